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
/// together: the pacer's tokens taken first (the run is cut where it would
/// wait), one store read for their idempotency keys, one outbox write for
/// their `queued` events, the stanzas written to the link one after another
/// (so WhatsApp gets them in queue order) without waiting for each server
/// ack, then each group of acks that has come recorded together (one write
/// for the results, one for the `sent` events), answered, and acked.
/// Everything else — refusals, repeats, other kinds, a device that is not
/// connected, a run of one — takes the one-at-a-time path (`handle`), whose
/// guarantees this path keeps: a delivery is acked only after its outcome is
/// durable, the WhatsApp id is derived from the command id, and a broker or
/// store failure hands the deliveries back.
///
/// A send of a run that fails on the link (it dropped, no ack in time) is
/// retried one at a time after the run, with the same message id; one that
/// WhatsApp refused is refused. When a link drops every send still waiting
/// fails, so they go again in order; only a lone ack timeout in the middle of
/// a run can let a later message of that run arrive before it.
extension CommandProcessor {
    /// Sends per run at most; also bounded by what the broker prefetched.
    static let maxRun = 256

    /// A send of a run that did not go through, for the one-at-a-time path after the run.
    struct Leftover: Sendable {
        var delivery: AMQPDelivery
        var command: ParsedCommand
        var messageID: String
        /// nil: failed on the link, send again; else WhatsApp's refusal.
        var refusal: CommandRefusal?
    }

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
            var taken = 0
            if run.count >= 2 {
                let (n, outcome, leftovers) = try await send(run: run, device: device, pacer: pacer)
                if outcome == .requeued { return .requeued }
                taken = n
                if try await settleLeftovers(leftovers, device: device, pacer: pacer) == .requeued { return .requeued }
            }
            if taken == 0 {
                // Not a run (or it could not start): this delivery on its own.
                if try await handle(batch[i], device: device, pacer: pacer, parsed: parsed[i]) == .requeued { return .requeued }
                taken = 1
            }
            i += taken
        }
        return .acked
    }

    /// The failed sends of a run, in order: sent again (link trouble) or refused.
    private func settleLeftovers(_ leftovers: [Leftover], device: DeviceID, pacer: Pacer) async throws(CancellationError) -> Outcome {
        let inFlight = await manager.inFlightSends(device)
        for (n, l) in leftovers.enumerated() {
            let routingKey = Self.originalRoutingKey(l.delivery)
            let outcome: Outcome
            if let refusal = l.refusal {
                outcome = try await handingBackOnFailure(l.delivery) {
                    try await failSend(l.command, l.delivery, refusal, messageID: l.messageID, device: device, routingKey: routingKey)
                }
            } else {
                outcome = try await handle(l.delivery, device: device, pacer: pacer, parsed: .success(l.command),
                                           queuedAs: l.messageID)
            }
            // Held in flight since the run (receipts keep finding the command) until settled here.
            inFlight?.end([l.messageID])
            if outcome == .requeued {
                inFlight?.end(leftovers.dropFirst(n + 1).map(\.messageID))
                return .requeued
            }
        }
        return .acked
    }

    /// Sends a run, or its head: it stops where the pacer would make it wait.
    /// Returns how many it took (0: it did not start, handle the first on its
    /// own) and those of them still to settle one at a time (failed or not
    /// written), in order.
    private func send(
        run: [(AMQPDelivery, ParsedCommand)], device: DeviceID, pacer: Pacer
    ) async throws(CancellationError) -> (Int, Outcome, [Leftover]) {
        // Anything out of the ordinary — repeats, a store error, a device not connected
        // right now — goes the one-at-a-time way, which knows how to wait and refuse.
        guard let data = try? await manager.dataStore(device), let inFlight = await manager.inFlightSends(device),
              let stored = try? await data.commandResults(run.map { $0.1.id }), stored.isEmpty,
              let (client, own) = await connectedClient(device)
        else { return (0, .acked, []) }

        // Tokens first: the first may wait, the others only if there now.
        let wait = await pacer.reserve()
        if wait > .zero {
            do { try await Task.sleep(for: wait) } catch { throw CancellationError() }
        }
        var allowed = 1
        while allowed < run.count, await pacer.take() { allowed += 1 }
        let head = Array(run[..<allowed])
        let messageIDs = head.map { MessageID.derived(idempotencyKey: $0.1.id, device: own) }

        inFlight.begin(zip(head, messageIDs).map { ($1, .init(commandID: $0.1.id, correlationID: $0.1.correlationID)) })
        let queued = zip(head, messageIDs).map { item, mid in
            statusEvent(device: device, item.1, messageID: mid, chat: item.1.action.chat!, status: "queued", error: nil)
        }
        do { try await events.record(contentsOf: queued) } catch {
            inFlight.end(messageIDs)
            return (allowed, try await requeue(head.map(\.0), reason: "message.status not recorded: \(error)"), [])
        }

        // Write the stanzas in queue order; acks are collected meanwhile.
        var staged: [Result<StagedMessage, any Error>] = []
        for (k, (_, c)) in head.enumerated() {
            guard let (chat, content) = Self.content(of: c.action, own: own) else { break }
            do {
                staged.append(.success(try await client.stageMessage(to: chat, content, id: messageIDs[k])))
            } catch {
                staged.append(.failure(error))
                break
            }
        }
        let taken = staged.count
        if taken == 0 {
            inFlight.end(messageIDs)
            return (0, .acked, [])
        }
        // Queued but not written (the one before failed): on their own after the run, in order.
        let unwritten = (taken..<allowed).map {
            Leftover(delivery: head[$0].0, command: head[$0].1, messageID: messageIDs[$0], refusal: nil)
        }
        let written = Array(head[..<taken]), ids = Array(messageIDs[..<taken])
        // Something was sent: finish even when the worker is being stopped (a detached
        // task does not inherit the cancellation), so a shutdown right after still records it.
        let finishing = Task { [self] in
            await finish(run: written, staged: staged, messageIDs: ids, device: device, data: data, inFlight: inFlight)
        }
        let (outcome, leftovers) = await finishing.value
        if outcome == .requeued {
            inFlight.end(unwritten.map(\.messageID))  // they come again with the rest
            return (allowed, .requeued, [])
        }
        return (allowed, .acked, leftovers + unwritten)
    }

    /// Awaits the acks of a written run and settles the sends as their acks come:
    /// result and `sent` recorded, reply published, delivery acked. Acks that came
    /// while the previous group was being recorded are recorded together.
    private func finish(
        run: [(AMQPDelivery, ParsedCommand)], staged: [Result<StagedMessage, any Error>], messageIDs: [String],
        device: DeviceID, data: any DeviceDataStoring, inFlight: InFlightSends
    ) async -> (Outcome, [Leftover]) {
        let acks = BatchBuffer<(Int, Result<SentMessage, any Error>)>()
        let collector = Task {
            for (k, s) in staged.enumerated() {
                do { acks.push((k, .success(try await s.get().sent()))) } catch { acks.push((k, .failure(error))) }
            }
            acks.finish(nil)
        }
        var leftovers: [Leftover] = []
        var outcome = Outcome.acked
        while let group = try? await acks.next(max: .max) {
            var done: [(d: AMQPDelivery, c: ParsedCommand, messageID: String, result: String)] = []
            for (k, r) in group {
                let (d, c) = run[k]
                switch r {
                case .success(let sent):
                    let result = JSONValue.object(Self.sentResult(c, sent))
                    done.append((d, c, messageIDs[k], String(decoding: result.encoded(), as: UTF8.self)))
                case .failure(let error):
                    let transient = Self.isTransient(error)
                    logger.info(transient ? "send of a run failed on the link; sending it again on its own"
                                          : "send of a run refused by WhatsApp",
                                metadata: meta(c, device, ["error": "\(Self.code(error))"]))
                    // Stays in flight until the one-at-a-time path settled it.
                    leftovers.append(Leftover(delivery: d, command: c, messageID: messageIDs[k],
                                              refusal: transient ? nil : Self.refusal(for: error)))
                }
            }
            guard outcome == .acked, !done.isEmpty else {
                // After a hand-back the rest stay unacknowledged: the consumer restarts and
                // they come again (the phone already has them under the same ids).
                inFlight.end(done.map(\.messageID))
                continue
            }
            do {
                outcome = try await settle(done, device: device, data: data, inFlight: inFlight)
            } catch {
                outcome = .requeued  // cancelled: cannot happen in this detached task
            }
        }
        collector.cancel()
        if outcome == .requeued {
            inFlight.end(leftovers.map(\.messageID))
            return (.requeued, [])
        }
        return (.acked, leftovers)
    }

    /// Records a group of acknowledged sends, replies, acks their deliveries.
    private func settle(
        _ done: [(d: AMQPDelivery, c: ParsedCommand, messageID: String, result: String)], device: DeviceID,
        data: any DeviceDataStoring, inFlight: InFlightSends
    ) async throws(CancellationError) -> Outcome {
        let records: [(record: IdempotencyRecord, inserted: Bool)]
        do {
            defer { inFlight.end(done.map(\.messageID)) }  // recorded (or handed back)
            records = try await data.recordCommandResults(done.map {
                IdempotencyRecord(commandID: $0.c.id, messageID: $0.messageID, result: $0.result, createdAt: Date(),
                                  correlationID: $0.c.correlationID)
            })
            // `sent` before the replies (as on the one-at-a-time path).
            try await events.record(contentsOf: done.map {
                statusEvent(device: device, $0.c, messageID: $0.messageID, chat: $0.c.action.chat!, status: "sent", error: nil,
                            failedDevices: Self.failedDevices(inResult: $0.result))
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
