import GRDB

extension HistorySchema {
    /// v2: a command's correlation id beside its result, and the lookup from a
    /// WhatsApp message id back to its command (receipts name the message, the
    /// `message.status` event names the command).
    static func v2(_ db: Database) throws {
        try db.alter(table: "idempotency") { t in t.add(column: "correlationID", .text) }
        try db.create(index: "idempotency_on_messageID", on: "idempotency", columns: ["messageID"])
    }
}
