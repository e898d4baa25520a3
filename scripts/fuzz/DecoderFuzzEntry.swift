// libFuzzer entry for the WABinary decoder, compiled together with the
// module's sources by scripts/fuzz-decoder.sh (not part of the package).
// Every input must decode or throw; what decodes must re-encode and decode
// to the same node.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    if let node = try? BinaryDecoder.decode(bytes) {
        guard let again = try? BinaryEncoder.encode(node), let back = try? BinaryDecoder.decode(again), back == node else {
            fatalError("decode → encode → decode changed the node")
        }
    }
    return 0
}
