import Foundation
import WACrypto
@testable import WAClient

func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }

/// Runs initiator and responder against each other in memory, passing bytes
/// through `transform` (e.g. to split them into chunks).
struct HandshakePair {
    var initiator: NoiseInitiator
    var responder: NoiseResponder

    mutating func run(
        now: Date = Date(), chunking: (Data) -> [Data] = { [$0] }
    ) throws -> (client: NoiseHandshakeResult, server: NoiseHandshakeResult) {
        guard case .send(let hello) = try initiator.start() else { throw WAClientError(.invalidState, "no hello") }
        var serverResult: NoiseHandshakeResult?
        var clientResult: NoiseHandshakeResult?
        var toClient = Data()
        for chunk in chunking(hello) {
            for action in try responder.receive(chunk) {
                if case .send(let bytes) = action { toClient += bytes }
                if case .established(let r) = action { serverResult = r }
            }
        }
        var toServer = Data()
        for chunk in chunking(toClient) {
            for action in try initiator.receive(chunk, now: now) {
                if case .send(let bytes) = action { toServer += bytes }
                if case .established(let r) = action { clientResult = r }
            }
        }
        for chunk in chunking(toServer) {
            for action in try responder.receive(chunk) {
                if case .established(let r) = action { serverResult = r }
            }
        }
        guard let clientResult, let serverResult else { throw WAClientError(.invalidState, "handshake did not finish") }
        return (clientResult, serverResult)
    }
}
