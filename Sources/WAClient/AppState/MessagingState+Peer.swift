import Foundation
import WABinary
import WAProto

extension MessagingState {
    /// Sends `message` to our own phone (device 0) alone, as a `category=peer` message
    /// (whatsmeow SendPeerMessage): not wrapped as a DeviceSentMessage, no ack awaited.
    func sendPeerMessage(_ message: WAE2E_Message, client: WAClient) async throws {
        let ctx = try await context(client)
        let phone = JID(user: ctx.own.user, server: ctx.own.server)
        let sender = MessageSender(store: ctx.store, ownDevice: ctx.own, deviceIdentity: ctx.deviceIdentity, lidUsers: [:])
        let out = try await sender.directMessage(id: MessageID.random(ownJID: ctx.own.nonAD), to: phone, message: message,
                                                 recipientDevices: [phone], ownDevices: [])
        guard let enc = out.node.child("participants")?.children("to").first?.child("enc") else {
            throw out.skipped[phone] ?? WAClientError(.messageEncryptFailed, "peer message not encrypted")
        }
        try await client.send(Node("message", [
            Attribute("to", .jid(phone)), Attribute("id", .string(out.node.string("id") ?? "")),
            Attribute("type", "text"), Attribute("category", "peer"),
        ], content: .nodes([enc])))
    }
}

extension MessagingFeature {
    /// For app state: a key request to our phone.
    func sendPeerMessage(_ message: WAE2E_Message, client: WAClient) async throws {
        try await state.sendPeerMessage(message, client: client)
    }
}
