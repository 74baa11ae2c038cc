import SwitchboardSTUN

/// Feeds `bytes` to the STUN message parser; whatever parses must encode to bytes that parse to the same
/// message, and the integrity and fingerprint readers must take any message without crashing.
func checkSTUNParser(_ bytes: UnsafeRawBufferPointer) {
    let raw = Array(bytes)
    _ = STUNMessage.hasValidFingerprint(raw)
    guard let message = try? STUNMessage(parsing: raw) else { return }
    for index in message.attributes.indices {
        precondition(STUNMessage.integrityInput(of: raw, attributeAt: index) != nil, "attribute \(index) not found")
    }
    for attribute in message.attributes where attribute.type == STUNAttributeType.xorMappedAddress {
        _ = STUNAddress(xorValue: attribute.value, transactionID: message.transactionID)
    }
    let again = try? STUNMessage(parsing: message.encoded())
    precondition(again == message, "the encoded message parses to another")
}
