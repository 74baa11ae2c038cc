/// A TURN ChannelData message (RFC 8656 §12.4): a channel number, the data's length and
/// the data — 4 bytes of header instead of a Send or Data indication's 36 or more. Over TCP each message
/// is padded to a multiple of 4 bytes; over UDP the padding may be left out.
public struct ChannelData: Sendable, Equatable {
    /// The channel numbers a client may bind: RFC 5766's range, which coturn and its clients still use;
    /// RFC 8656 narrowed it to 0x4000–0x4FFF.
    public static let numbers: ClosedRange<UInt16> = 0x4000...0x7FFF
    public static let headerLength = 4

    public var channel: UInt16
    public var data: ArraySlice<UInt8>

    public init(channel: UInt16, data: ArraySlice<UInt8>) {
        self.channel = channel
        self.data = data
    }

    /// Whether a message starting with `firstByte` is ChannelData: its first two bits are 01.
    public static func isChannelData(firstByte: UInt8) -> Bool { firstByte & 0xC0 == 0x40 }

    /// The message in `bytes`, which may carry padding after the data; `nil` when it is not one.
    public init?(parsing bytes: [UInt8]) {
        guard bytes.count >= Self.headerLength else { return nil }
        let channel = bytes.uint16(at: 0)
        let length = Int(bytes.uint16(at: 2))
        guard Self.numbers.contains(channel), Self.headerLength + length <= bytes.count else { return nil }
        self.channel = channel
        self.data = bytes[Self.headerLength..<Self.headerLength + length]
    }

    /// The length on the wire of the message whose header is `channel`/`length`, padded when `padded`.
    public static func wireLength(dataLength: Int, padded: Bool) -> Int {
        headerLength + (padded ? STUNAttribute.padded(dataLength) : dataLength)
    }

    /// The header written before `dataLength` bytes of data on `channel`.
    public static func header(channel: UInt16, dataLength: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendUInt16(channel)
        bytes.appendUInt16(UInt16(truncatingIfNeeded: dataLength))
        return bytes
    }
}
