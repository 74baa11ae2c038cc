import Crypto
import Foundation
import SwiftASN1
import X509

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1` (swift-certificates), kept in the data
/// directory so clients can trust it once across restarts.
enum DevelopmentCertificate {
    /// The certificate and key files in `directory`, made on first use.
    static func files(in directory: String) throws -> (certificate: String, key: String) {
        let folder = (directory as NSString).appendingPathComponent("tls")
        let certificatePath = (folder as NSString).appendingPathComponent("self-signed-cert.pem")
        let keyPath = (folder as NSString).appendingPathComponent("self-signed-key.pem")
        if FileManager.default.fileExists(atPath: certificatePath), FileManager.default.fileExists(atPath: keyPath) {
            return (certificatePath, keyPath)
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("Switchboard development certificate") }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(365 * 24 * 3600),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                SubjectAlternativeNames([
                    .dnsName("localhost"),
                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                    .ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
                ])
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        try certificate.serializeAsPEM().pemString.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try key.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
        return (certificatePath, keyPath)
    }
}
