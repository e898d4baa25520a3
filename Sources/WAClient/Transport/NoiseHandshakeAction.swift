import Foundation
import WACrypto

/// What a Noise handshake state machine asks its owner to do next.
public enum NoiseHandshakeAction: Sendable {
    /// Write these bytes to the socket as they are (already framed).
    case send(Data)
    /// The handshake is done; continue with the result's session.
    case established(NoiseHandshakeResult)
}

/// The outcome of a finished handshake.
public struct NoiseHandshakeResult: Sendable {
    /// The transport for everything after the handshake.
    public var session: NoiseSession
    /// The peer's static key: the server's (certified) for an initiator, the client's for a responder.
    public let peerStatic: Curve25519PublicKey
    /// The client's ClientFinish payload (a ClientPayload); empty on the initiator side.
    public let clientPayload: Data
    /// Transport plaintexts that arrived in the same chunk as the last handshake frame.
    public let earlyPlaintexts: [Data]
    /// Responder side: the edge routing info of the client's `ED` preamble, if it sent one.
    public var routingInfo: Data? = nil
}
