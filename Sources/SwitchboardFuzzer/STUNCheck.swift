import SwitchboardSTUN

/// Feeds `bytes` to the STUN message parser; whatever parses must encode to bytes that parse to the same
/// message, and the integrity and fingerprint readers must take any message without crashing.
func checkSTUNParser(_ bytes: UnsafeRawBufferPointer) {
    let raw = Array(bytes)
    if let channelData = ChannelData(parsing: raw) {
        precondition(ChannelData.numbers.contains(channelData.channel) && channelData.data.count <= raw.count - 4)
    }
    _ = STUNMessage.hasValidFingerprint(raw)
    guard let message = try? STUNMessage(parsing: raw) else { return }
    for index in message.attributes.indices {
        precondition(STUNMessage.integrityInput(of: raw, attributeAt: index) != nil, "attribute \(index) not found")
    }
    let addresses: Set<UInt16> = [
        STUNAttributeType.xorMappedAddress, STUNAttributeType.xorPeerAddress, STUNAttributeType.xorRelayedAddress,
    ]
    for attribute in message.attributes where addresses.contains(attribute.type) {
        _ = STUNAddress(xorValue: attribute.value, transactionID: message.transactionID)
    }
    let again = try? STUNMessage(parsing: message.encoded())
    precondition(again == message, "the encoded message parses to another")
}
