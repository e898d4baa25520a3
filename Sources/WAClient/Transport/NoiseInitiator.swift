import Foundation
import WACrypto
import WAProto

/// The client side of WhatsApp's Noise XX handshake, as a pure state
/// machine: bytes in, actions out, no I/O and no clock of its own.
///
///     -> e                          ClientHello{ephemeral}
///     <- e, ee, s, es  + CertChain  ServerHello{ephemeral, static, payload}
///     -> s, se         + payload    ClientFinish{static, payload}
///
/// `start()` returns the connection header plus the first frame; feed every
/// received chunk to `receive(_:now:)`. On any error the machine fails for
/// good: a new connection needs a new machine.
public struct NoiseInitiator: Sendable {
    private enum State: Sendable {
        case idle
        case awaitingServerHello(NoiseSymmetricState, FrameDecoder)
        case established
        case failed
    }

    private let staticKey: Curve25519KeyPair
    private let ephemeral: Curve25519KeyPair
    private let clientPayload: Data
    private let verifier: CertChainVerifier
    private let maxFrameSize: Int
    private let routingInfo: Data?
    private var state: State = .idle

    /// - Parameters:
    ///   - staticKey: the device's Noise key (stored with the device).
    ///   - clientPayload: the serialized ClientPayload sent in ClientFinish.
    ///   - verifier: checks the server's certificate chain; WhatsApp's root by default.
    ///   - ephemeral: a fresh key per connection (injectable for tests).
    ///   - maxFrameSize: the largest frame accepted from the server, during and after the handshake.
    public init(
        staticKey: Curve25519KeyPair, clientPayload: Data, verifier: CertChainVerifier = .whatsApp,
        ephemeral: Curve25519KeyPair = .generate(), maxFrameSize: Int = FrameCodec.maxFrameSize,
        routingInfo: Data? = nil
    ) {
        self.maxFrameSize = maxFrameSize
        // Sent only when it fits the preamble's bound; otherwise the plain header.
        self.routingInfo = routingInfo.flatMap { !$0.isEmpty && $0.count <= FrameCodec.maxRoutingInfo ? $0 : nil }
        self.staticKey = staticKey
        self.clientPayload = clientPayload
        self.verifier = verifier
        self.ephemeral = ephemeral
    }

    /// The first bytes to send: the `WA` header and the ClientHello frame.
    public mutating func start() throws -> NoiseHandshakeAction {
        guard case .idle = state else { throw WAClientError(.invalidState, "start() called twice") }
        var symmetric = NoiseSymmetricState(prologue: FrameCodec.header)
        symmetric.mixHash(ephemeral.publicKey.rawRepresentation)
        var hello = WAWa6_HandshakeMessage()
        hello.clientHello.ephemeral = ephemeral.publicKey.rawRepresentation
        let frame = try FrameCodec.frame(try hello.serializedBytes() as Data)
        state = .awaitingServerHello(symmetric, FrameDecoder(maxFrameSize: maxFrameSize))
        return .send((routingInfo.map(FrameCodec.routingPreamble) ?? Data()) + FrameCodec.header + frame)
    }

    /// Feeds received bytes; returns the ClientFinish to send and the established session
    /// once the ServerHello is complete, or nothing while it is still arriving.
    public mutating func receive(_ chunk: some DataProtocol, now: Date = Date()) throws -> [NoiseHandshakeAction] {
        guard case .awaitingServerHello(var symmetric, var decoder) = state else {
            throw WAClientError(.invalidState, "no handshake message expected now")
        }
        state = .failed
        let frames = try decoder.feed(chunk)
        guard let first = frames.first else {
            state = .awaitingServerHello(symmetric, decoder)
            return []
        }
        let message: WAWa6_HandshakeMessage
        do {
            message = try WAWa6_HandshakeMessage(serializedBytes: first)
        } catch {
            throw WAClientError(.handshakeMalformed, "ServerHello is not a HandshakeMessage")
        }
        let hello = message.serverHello
        guard message.hasServerHello, hello.ephemeral.count == 32, hello.static.count == 48, hello.hasPayload else {
            throw WAClientError(.handshakeMalformed, "ServerHello lacks ephemeral (32), static (48) or payload")
        }
        let serverEphemeral = try Curve25519PublicKey(rawRepresentation: hello.ephemeral)
        symmetric.mixHash(serverEphemeral.rawRepresentation)
        try symmetric.mixKey(dh: ephemeral.privateKey, serverEphemeral)
        let serverStatic = try Curve25519PublicKey(rawRepresentation: try symmetric.decryptAndHash(hello.static))
        try symmetric.mixKey(dh: ephemeral.privateKey, serverStatic)
        let certificateChain = try symmetric.decryptAndHash(hello.payload)
        try verifier.verify(certificateChain, serverStatic: serverStatic, now: now)

        var finish = WAWa6_HandshakeMessage()
        finish.clientFinish.static = try symmetric.encryptAndHash(staticKey.publicKey.rawRepresentation)
        try symmetric.mixKey(dh: staticKey.privateKey, serverEphemeral)
        finish.clientFinish.payload = try symmetric.encryptAndHash(clientPayload)
        let finishFrame = try FrameCodec.frame(try finish.serializedBytes() as Data)

        let keys = symmetric.split()
        var session = NoiseSession(writeKey: keys.initiatorToResponder, readKey: keys.responderToInitiator, decoder: decoder)
        let early = try frames.dropFirst().map { try session.open($0) }
        state = .established
        return [
            .send(finishFrame),
            .established(NoiseHandshakeResult(
                session: session, peerStatic: serverStatic, clientPayload: Data(), earlyPlaintexts: early)),
        ]
    }
}
