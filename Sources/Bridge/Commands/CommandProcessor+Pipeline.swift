import AMQP
import BridgeStore
import Foundation
import WABinary
import WAClient
import WAProto

/// The pipelined path of a device's commands.
///
/// The consumer hands over what the broker prefetched (`BatchBuffer`). A
/// run of consecutive new `send.*` commands for a connected device goes out
/// together: one store read for their idempotency keys, one outbox write for
/// their `queued` events, the stanzas written to the link one after another
/// (so WhatsApp gets them in queue order) without waiting for each server
/// ack, then the acks awaited, one write for their results and one for their
/// `sent` events, the replies published together, the deliveries acked.
/// Everything else — refusals, repeats, other kinds, a device that is not
/// connected, a run of one — takes the one-at-a-time path (`handle`), whose
/// guarantees this path keeps: a delivery is acked only after its outcome is
/// durable, the WhatsApp id is derived from the command id, and a broker or
/// store failure hands the deliveries back.
///
/// One difference: a send of a run that fails (the link dropped, no ack) is
/// retried one at a time after the run, with the same message id. When a
/// link drops, every send still waiting fails, so they go again in order;
/// only a lone ack timeout in the middle of a run can let a later message of
/// that run arrive before it.
extension CommandProcessor {
    /// Sends per run at most; also bounded by what the broker prefetched.
    static let maxRun = 256

    /// Handles prefetched deliveries of `device`'s queue, in order. `.requeued`
    /// when one was handed back: the caller must restart its consumer so that
    /// the ones behind it come again in order.
    func handle(batch: [AMQPDelivery], device: DeviceID, pacer: Pacer) async throws(CancellationError) -> Outcome {
        let parsed = batch.map { CommandParser.parse(body: $0.body, properties: $0.properties) }
        var i = 0
        while i < batch.count {
            var run: [(AMQPDelivery, ParsedCommand)] = []
            var ids = Set<String>()
            var j = i
            while j < batch.count, run.count < Self.maxRun, case .success(let c) = parsed[j], c.kind.sendsMessage,
                  c.action.chat != nil, ids.insert(c.id).inserted {
                run.append((batch[j], c))
                j += 1
            }
            if run.count < 2 {
                if try await handle(batch[i], device: device, pacer: pacer, parsed: parsed[i]) == .requeued { return .requeued }
                i += 1
                continue
            }
            let (taken, outcome, retry) = try await send(run: run, device: device, pacer: pacer)
            if outcome == .requeued { return .requeued }
            for (d, c) in retry where try await handle(d, device: device, pacer: pacer, parsed: .success(c)) == .requeued {
                return .requeued
            }
            i += taken
        }
        return .acked
    }

    /// Sends a run (or its head: it stops where the pacer would make it wait).
    /// Returns how many it took, and the ones whose send failed, for the
    /// one-at-a-time path.
    private func send(
        run: [(AMQPDelivery, ParsedCommand)], device: DeviceID, pacer: Pacer
    ) async throws(CancellationError) -> (Int, Outcome, [(AMQPDelivery, ParsedCommand)]) {
        let single: () async throws(CancellationError) -> (Int, Outcome, [(AMQPDelivery, ParsedCommand)]) = {
            (1, try await handle(run[0].0, device: device, pacer: pacer, parsed: .success(run[0].1)), [])
        }
        // Anything out of the ordinary — repeats, a store error, a device not connected
        // right now — goes the one-at-a-time way, which knows how to wait and refuse.
        guard let data = try? await manager.dataStore(device), let inFlight = await manager.inFlightSends(device),
              let stored = try? await data.commandResults(run.map { $0.1.id }), stored.isEmpty,
              let (client, own) = await connectedClient(device)
        else { return try await single() }

        let messageIDs = run.map { MessageID.derived(idempotencyKey: $0.1.id, device: own) }
        inFlight.begin(messageIDs)
        let queued = zip(run, messageIDs).map { item, mid in
            statusEvent(device: device, item.1, messageID: mid, chat: item.1.action.chat!, status: "queued", error: nil)
        }
        do { try await events.record(contentsOf: queued) } catch {
            inFlight.end(messageIDs)
            return (run.count, try await requeue(run.map(\.0), reason: "message.status not recorded: \(error)"), [])
        }

        // Write the stanzas in queue order; the first may wait for the pacer, the
        // others go only while a token is there now (the rest make the next run).
        var staged: [Result<StagedMessage, any Error>] = []
        for (k, (_, c)) in run.enumerated() {
            if k == 0 {
                let wait = await pacer.reserve()
                if wait > .zero {
                    do { try await Task.sleep(for: wait) } catch {
                        inFlight.end(messageIDs)
                        throw CancellationError()
                    }
                }
            } else if !(await pacer.take()) {
                break
            }
            guard let (chat, content) = Self.content(of: c.action, own: own) else { break }
            do {
                staged.append(.success(try await client.stageMessage(to: chat, content, id: messageIDs[k])))
            } catch {
                staged.append(.failure(error))
                break
            }
        }
        let taken = staged.count
        inFlight.end(Array(messageIDs[taken...]))
        let head = Array(run[..<taken]), ids = Array(messageIDs[..<taken])
        // Something was sent: finish even when the worker is being stopped (a detached
        // task does not inherit the cancellation), so a shutdown right after still records it.
        let finishing = Task { [self] in
            try await finish(run: head, staged: staged, messageIDs: ids, device: device, data: data, inFlight: inFlight)
        }
        do {
            let (outcome, retry) = try await finishing.value
            return (taken, outcome, retry)
        } catch {
            throw CancellationError()
        }
    }

    /// Awaits the acks of a written run and settles each command as its ack comes:
    /// result and `sent` recorded, reply published, delivery acked. Acks that came
    /// while the previous group was being recorded are recorded together (one
    /// transaction each for results and events). Recording as they come matters:
    /// the client reads stanzas one at a time, and a receipt for message k waits
    /// (`InFlightSends`) until k is recorded, so k must not wait for later acks
    /// queued behind that receipt.
    private func finish(
        run: [(AMQPDelivery, ParsedCommand)], staged: [Result<StagedMessage, any Error>], messageIDs: [String],
        device: DeviceID, data: DeviceDataStore, inFlight: InFlightSends
    ) async throws(CancellationError) -> (Outcome, [(AMQPDelivery, ParsedCommand)]) {
        let acks = BatchBuffer<(Int, Result<SentMessage, any Error>)>()
        let collector = Task {
            for (k, s) in staged.enumerated() {
                do { acks.push((k, .success(try await s.get().sent()))) } catch { acks.push((k, .failure(error))) }
            }
            acks.finish(nil)
        }
        defer { collector.cancel() }
        var retry: [(AMQPDelivery, ParsedCommand)] = []
        var outcome = Outcome.acked
        while let group = try? await acks.next(max: .max) {
            var done: [(d: AMQPDelivery, c: ParsedCommand, messageID: String, result: String)] = []
            for (k, r) in group {
                let (d, c) = run[k]
                switch r {
                case .success(let sent):
                    let result: JSONValue = [
                        "command_id": .string(c.id), "kind": .string(c.kind.rawValue), "status": "sent",
                        "message_id": .string(sent.id), "timestamp": .string(CloudEvent.timeString(sent.timestamp ?? Date())),
                    ]
                    done.append((d, c, messageIDs[k], String(decoding: result.encoded(), as: UTF8.self)))
                case .failure(let error):
                    logger.info("send of a run failed; retrying it on its own",
                                metadata: meta(c, device, ["error": "\(Self.code(error))"]))
                    retry.append((d, c))
                    inFlight.end([messageIDs[k]])
                }
            }
            // After a hand-back the rest stay unacknowledged: the consumer restarts and
            // they come again (the phone already has them under the same ids).
            guard outcome == .acked, !done.isEmpty else {
                inFlight.end(done.map(\.messageID))
                continue
            }
            outcome = try await settle(done, device: device, data: data)
            inFlight.end(done.map(\.messageID))
        }
        return (outcome, outcome == .acked ? retry : [])
    }

    /// Records a group of acknowledged sends, replies, acks their deliveries.
    private func settle(
        _ done: [(d: AMQPDelivery, c: ParsedCommand, messageID: String, result: String)], device: DeviceID, data: DeviceDataStore
    ) async throws(CancellationError) -> Outcome {
        let records: [(record: IdempotencyRecord, inserted: Bool)]
        do {
            records = try await data.recordCommandResults(done.map {
                IdempotencyRecord(commandID: $0.c.id, messageID: $0.messageID, result: $0.result, createdAt: Date(),
                                  correlationID: $0.c.correlationID)
            })
            // `sent` before the replies (as on the one-at-a-time path).
            try await events.record(contentsOf: done.map {
                statusEvent(device: device, $0.c, messageID: $0.messageID, chat: $0.c.action.chat!, status: "sent", error: nil)
            })
        } catch {
            // Nothing is acked: the redelivered commands find their results (or send again
            // under the same ids) and record what is missing.
            return try await requeue(done.map(\.d), reason: "recording a run: \(error)")
        }
        let replies = zip(done, records).compactMap { item, stored -> AMQPOutgoingMessage? in
            guard let to = item.c.replyTo else { return nil }
            return replyMessage(to: to, correlationID: item.c.correlationID, body: Array(stored.record.result.utf8))
        }
        let failures = replies.isEmpty ? [] : await connection.publish(contentsOf: replies)
        if failures.contains(where: { $0 != nil }) {
            // Results are recorded: the redelivered commands answer them again.
            return try await requeue(done.map(\.d), reason: "reply publish failed")
        }
        for item in done {
            logger.debug("command done", metadata: meta(item.c, device))
            _ = ack(item.d)
        }
        return .acked
    }

    /// The device's client when it is connected and logged in right now.
    private func connectedClient(_ device: DeviceID) async -> (WAClient, JID)? {
        guard let client = await manager.commandClient(device), await client.state == .connected,
              let me = await client.loginInfo?.jid else { return nil }
        return (client, me)
    }

    /// Hands deliveries back in order after the backoff.
    private func requeue(_ ds: [AMQPDelivery], reason: String) async throws(CancellationError) -> Outcome {
        guard let first = ds.first else { return .acked }
        _ = try await requeue(first, reason: reason)
        for d in ds.dropFirst() {
            do { try d.nack(requeue: true) } catch {
                logger.info("nack on a dead channel; the broker will redeliver", metadata: ["amqp.error": "\(error.code)"])
            }
        }
        return .requeued
    }
}
