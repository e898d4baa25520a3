import Foundation
import WACrypto
import WAProto

/// The server side of WhatsApp's Noise XX handshake (for our simulator and
/// tests), as a pure state machine mirroring `NoiseInitiator`.
///
/// It expects the client's `WA` header, answers ClientHello with its
/// ephemeral, its encrypted static key and the encrypted certificate chain,
/// and finishes on ClientFinish, handing out the client's static key and
/// ClientPayload with the session.
public struct NoiseResponder: Sendable {
    private enum State: Sendable {
        case awaitingClientHello(FrameDecoder)
        case awaitingClientFinish(NoiseSymmetricState, FrameDecoder)
        case established
        case failed
    }

    private let staticKey: Curve25519KeyPair
    private let ephemeral: Curve25519KeyPair
    private let certificateChain: Data
    private var state: State

    /// - Parameters:
    ///   - staticKey: the server's Noise static key, certified by `certificateChain`'s leaf.
    ///   - certificateChain: the serialized CertChain sent as the ServerHello payload.
    ///   - maxFrameSize: the largest frame accepted from the client, during and after the handshake.
    public init(
        staticKey: Curve25519KeyPair, certificateChain: Data, ephemeral: Curve25519KeyPair = .generate(),
        maxFrameSize: Int = FrameCodec.maxFrameSize
    ) {
        self.state = .awaitingClientHello(FrameDecoder(expectsHeader: true, maxFrameSize: maxFrameSize))
        self.staticKey = staticKey
        self.certificateChain = certificateChain
        self.ephemeral = ephemeral
    }

    public mutating func receive(_ chunk: some DataProtocol) throws -> [NoiseHandshakeAction] {
        switch state {
        case .awaitingClientHello(var decoder):
            state = .failed
            let frames = try decoder.feed(chunk)
            guard let first = frames.first else {
                state = .awaitingClientHello(decoder)
                return []
            }
            let message: WAWa6_HandshakeMessage
            do {
                message = try WAWa6_HandshakeMessage(serializedBytes: first)
            } catch {
                throw WAClientError(.handshakeMalformed, "ClientHello is not a HandshakeMessage")
            }
            guard message.hasClientHello, message.clientHello.ephemeral.count == 32 else {
                throw WAClientError(.handshakeMalformed, "ClientHello lacks a 32-byte ephemeral key")
            }
            let clientEphemeral = try Curve25519PublicKey(rawRepresentation: message.clientHello.ephemeral)
            var symmetric = NoiseSymmetricState(prologue: FrameCodec.header)
            symmetric.mixHash(clientEphemeral.rawRepresentation)

            var reply = WAWa6_HandshakeMessage()
            reply.serverHello.ephemeral = ephemeral.publicKey.rawRepresentation
            symmetric.mixHash(ephemeral.publicKey.rawRepresentation)
            try symmetric.mixKey(dh: ephemeral.privateKey, clientEphemeral)
            reply.serverHello.static = try symmetric.encryptAndHash(staticKey.publicKey.rawRepresentation)
            try symmetric.mixKey(dh: staticKey.privateKey, clientEphemeral)
            reply.serverHello.payload = try symmetric.encryptAndHash(certificateChain)
            let replyFrame = try FrameCodec.frame(try reply.serializedBytes() as Data)
            state = .awaitingClientFinish(symmetric, decoder)

            // A ClientFinish merged into the same chunk is handled right away.
            var actions: [NoiseHandshakeAction] = [.send(replyFrame)]
            if frames.count > 1 {
                actions += try finish(frames: Array(frames.dropFirst()))
            }
            return actions

        case .awaitingClientFinish(let symmetric, var decoder):
            state = .failed
            let frames = try decoder.feed(chunk)
            state = .awaitingClientFinish(symmetric, decoder)
            guard !frames.isEmpty else { return [] }
            return try finish(frames: frames)

        case .established, .failed:
            throw WAClientError(.invalidState, "no handshake message expected now")
        }
    }

    private mutating func finish(frames: [Data]) throws -> [NoiseHandshakeAction] {
        guard case .awaitingClientFinish(var symmetric, let decoder) = state else {
            throw WAClientError(.invalidState, "no ClientFinish expected now")
        }
        state = .failed
        let message: WAWa6_HandshakeMessage
        do {
            message = try WAWa6_HandshakeMessage(serializedBytes: frames[0])
        } catch {
            throw WAClientError(.handshakeMalformed, "ClientFinish is not a HandshakeMessage")
        }
        guard message.hasClientFinish, message.clientFinish.static.count == 48, message.clientFinish.hasPayload else {
            throw WAClientError(.handshakeMalformed, "ClientFinish lacks static (48) or payload")
        }
        let clientStatic = try Curve25519PublicKey(
            rawRepresentation: try symmetric.decryptAndHash(message.clientFinish.static))
        try symmetric.mixKey(dh: ephemeral.privateKey, clientStatic)
        let payload = try symmetric.decryptAndHash(message.clientFinish.payload)

        let keys = symmetric.split()
        var session = NoiseSession(writeKey: keys.responderToInitiator, readKey: keys.initiatorToResponder, decoder: decoder)
        let early = try frames.dropFirst().map { try session.open($0) }
        state = .established
        return [.established(NoiseHandshakeResult(
            session: session, peerStatic: clientStatic, clientPayload: payload, earlyPlaintexts: early,
            routingInfo: decoder.routingInfo))]
    }
}
