import Foundation
import WABinary
import WAProto

extension MessagingState {
    /// Sends `message` to our own phone (device 0) alone, as a `category=peer` message
    /// (whatsmeow SendPeerMessage): not wrapped as a DeviceSentMessage, no ack awaited.
    func sendPeerMessage(_ message: WAE2E_Message, client: WAClient) async throws {
        let ctx = try await context(client)
        // The session with our phone lives under our phone number or, after the LID move, our LID.
        var lastError: (any Error)?
        for own in [ctx.own, ownLID(ctx)].compactMap({ $0 }) {
            let phone = JID(user: own.user, server: own.server)
            do {
                let sender = MessageSender(store: ctx.store, ownDevice: own, deviceIdentity: ctx.deviceIdentity, lidUsers: [:])
                let out = try await sender.directMessage(id: MessageID.random(ownJID: ctx.own.nonAD), to: phone, message: message,
                                                         recipientDevices: [phone], ownDevices: [])
                guard let enc = out.node.child("participants")?.children("to").first?.child("enc") else {
                    throw out.skipped[phone] ?? WAClientError(.messageEncryptFailed, "peer message not encrypted")
                }
                try await client.send(Node("message", [
                    Attribute("to", .jid(phone)), Attribute("id", .string(out.node.string("id") ?? "")),
                    Attribute("type", "text"), Attribute("category", "peer"),
                ], content: .nodes([enc])))
                return
            } catch { lastError = error }
        }
        throw lastError ?? WAClientError(.messageEncryptFailed, "peer message not encrypted")
    }
}

extension MessagingFeature {
    /// For app state: a key request to our phone.
    func sendPeerMessage(_ message: WAE2E_Message, client: WAClient) async throws {
        try await state.sendPeerMessage(message, client: client)
    }
}
