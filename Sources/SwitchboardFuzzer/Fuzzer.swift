/// The checks a fuzz run can drive, by name: the first argument picks one.
let checks: [String: @Sendable (UnsafeRawBufferPointer) -> Void] = [
    "http1": checkHTTP1Parser,
    "stun": checkSTUNParser,
]

#if FUZZING
    /// The check this run drives; set once by `main` before libFuzzer starts.
    nonisolated(unsafe) var selectedCheck: @Sendable (UnsafeRawBufferPointer) -> Void = { _ in }

    /// libFuzzer's entry point (`swift build -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING`).
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
        selectedCheck(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }

    /// libFuzzer's driver, which its own `main` would call.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ test: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
    ) -> CInt

    /// The executable's entry point: SwiftPM links `main` to `<module>_main`, so libFuzzer's `main` is not
    /// used and this one picks the check named first, then starts the driver on the other arguments.
    @_cdecl("SwitchboardFuzzer_main")
    public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
        guard argc > 1, let name = argv[1].map({ String(cString: $0) }), let check = checks[name] else {
            print("usage: SwitchboardFuzzer \(checks.keys.sorted().joined(separator: "|")) [libFuzzer arguments]")
            return 2
        }
        selectedCheck = check
        argv[1] = argv[0]
        var argc = argc - 1
        var argv = argv + 1
        return runFuzzerDriver(&argc, &argv, fuzzOneInput)
    }
#else
    import Foundation

    /// Without libFuzzer: runs the named check over the files named (a corpus), as a test does:
    /// `swift run SwitchboardFuzzer stun FILE…`.
    @main struct FuzzReplay {
        static func main() throws {
            let arguments = CommandLine.arguments.dropFirst()
            guard let name = arguments.first, let check = checks[name] else {
                print("usage: SwitchboardFuzzer \(checks.keys.sorted().joined(separator: "|")) FILE…")
                exit(2)
            }
            for path in arguments.dropFirst() {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                data.withUnsafeBytes(check)
            }
            print("checked \(arguments.count - 1) inputs")
        }
    }
#endif
