import CRabbitMQ
import Glibc

/// Owns the C memory a single rabbitmq-c call reads (strings, tables,
/// properties). rabbitmq-c serialises synchronously, so everything can be
/// freed as soon as the call returns.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit { for b in blocks { free(b) } }

    private func alloc(_ size: Int) -> UnsafeMutableRawPointer {
        let p = malloc(max(size, 1))!
        blocks.append(p)
        return p
    }

    func bytes(_ s: String) -> amqp_bytes_t { bytes(Array(s.utf8)) }

    func bytes(_ a: [UInt8]) -> amqp_bytes_t {
        if a.isEmpty { return wab_amqp_empty_bytes() }
        let p = alloc(a.count)
        a.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: a.count) }
        return amqp_bytes_t(len: a.count, bytes: p)
    }

    func cString(_ s: String) -> UnsafePointer<CChar> {
        let utf8 = Array(s.utf8CString)
        let p = alloc(utf8.count).bindMemory(to: CChar.self, capacity: utf8.count)
        utf8.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: utf8.count) }
        return UnsafePointer(p)
    }

    func table(_ t: AMQPTable?) -> amqp_table_t {
        guard let t, !t.isEmpty else { return wab_amqp_empty_table() }
        let entries = alloc(MemoryLayout<amqp_table_entry_t>.stride * t.count)
            .bindMemory(to: amqp_table_entry_t.self, capacity: t.count)
        // Sorted keys: deterministic bytes on the wire, easier to debug.
        for (i, key) in t.keys.sorted().enumerated() {
            entries[i] = amqp_table_entry_t()
            entries[i].key = bytes(key)
            fill(&entries[i].value, t[key]!)
        }
        return amqp_table_t(num_entries: Int32(t.count), entries: entries)
    }

    private func fill(_ v: inout amqp_field_value_t, _ value: AMQPFieldValue) {
        switch value {
        case .bool(let b): wab_fv_set_boolean(&v, b ? 1 : 0)
        case .int8(let x): wab_fv_set_i8(&v, x)
        case .uint8(let x): wab_fv_set_u8(&v, x)
        case .int16(let x): wab_fv_set_i16(&v, x)
        case .uint16(let x): wab_fv_set_u16(&v, x)
        case .int32(let x): wab_fv_set_i32(&v, x)
        case .uint32(let x): wab_fv_set_u32(&v, x)
        case .int64(let x): wab_fv_set_i64(&v, x)
        case .float(let x): wab_fv_set_f32(&v, x)
        case .double(let x): wab_fv_set_f64(&v, x)
        case .decimal(let scale, let value): wab_fv_set_decimal(&v, scale, value)
        case .string(let s): wab_fv_set_utf8(&v, bytes(s))
        case .bytes(let b): wab_fv_set_bytes(&v, bytes(b))
        case .timestamp(let t): wab_fv_set_timestamp(&v, t)
        case .void: wab_fv_set_void(&v)
        case .table(let t): wab_fv_set_table(&v, table(t))
        case .array(let items):
            let p = alloc(MemoryLayout<amqp_field_value_t>.stride * items.count)
                .bindMemory(to: amqp_field_value_t.self, capacity: max(items.count, 1))
            for (i, item) in items.enumerated() {
                p[i] = amqp_field_value_t()
                fill(&p[i], item)
            }
            wab_fv_set_array(&v, amqp_array_t(num_entries: Int32(items.count), entries: p))
        }
    }

    func properties(_ p: AMQPProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: UInt32 = 0
        func str(_ s: String?, _ flag: Int32, _ set: (amqp_bytes_t) -> Void) {
            guard let s else { return }
            set(bytes(s))
            flags |= UInt32(flag)
        }
        str(p.contentType, 1 << 15) { c.content_type = $0 }
        str(p.contentEncoding, 1 << 14) { c.content_encoding = $0 }
        if let h = p.headers {
            c.headers = table(h)
            flags |= 1 << 13
        }
        if let d = p.deliveryMode {
            c.delivery_mode = d.rawValue
            flags |= 1 << 12
        }
        if let pr = p.priority {
            c.priority = pr
            flags |= 1 << 11
        }
        str(p.correlationID, 1 << 10) { c.correlation_id = $0 }
        str(p.replyTo, 1 << 9) { c.reply_to = $0 }
        str(p.expiration, 1 << 8) { c.expiration = $0 }
        str(p.messageID, 1 << 7) { c.message_id = $0 }
        if let t = p.timestamp {
            c.timestamp = t
            flags |= 1 << 6
        }
        str(p.type, 1 << 5) { c.type = $0 }
        str(p.userID, 1 << 4) { c.user_id = $0 }
        str(p.appID, 1 << 3) { c.app_id = $0 }
        str(p.clusterID, 1 << 2) { c.cluster_id = $0 }
        c._flags = flags
        return c
    }
}

/// Copies C values (owned by rabbitmq-c's pools) into Swift values.
enum CDecode {
    static func bytes(_ b: amqp_bytes_t) -> [UInt8] {
        guard b.len > 0, let p = b.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: b.len))
    }

    static func string(_ b: amqp_bytes_t) -> String {
        String(decoding: bytes(b), as: UTF8.self)
    }

    static func table(_ t: amqp_table_t) -> AMQPTable {
        var out: AMQPTable = [:]
        guard t.num_entries > 0, let entries = t.entries else { return out }
        for i in 0..<Int(t.num_entries) {
            var e = entries[i]
            out[string(e.key)] = value(&e.value)
        }
        return out
    }

    static func value(_ v: UnsafePointer<amqp_field_value_t>) -> AMQPFieldValue {
        switch v.pointee.kind {
        case UInt8(ascii: "t"): return .bool(wab_fv_boolean(v) != 0)
        case UInt8(ascii: "b"): return .int8(wab_fv_i8(v))
        case UInt8(ascii: "B"): return .uint8(wab_fv_u8(v))
        case UInt8(ascii: "s"): return .int16(wab_fv_i16(v))
        case UInt8(ascii: "u"): return .uint16(wab_fv_u16(v))
        case UInt8(ascii: "I"): return .int32(wab_fv_i32(v))
        case UInt8(ascii: "i"): return .uint32(wab_fv_u32(v))
        case UInt8(ascii: "l"): return .int64(wab_fv_i64(v))
        case UInt8(ascii: "L"): return .int64(Int64(bitPattern: wab_fv_u64(v)))
        case UInt8(ascii: "f"): return .float(wab_fv_f32(v))
        case UInt8(ascii: "d"): return .double(wab_fv_f64(v))
        case UInt8(ascii: "D"):
            let d = wab_fv_decimal(v)
            return .decimal(scale: d.decimals, value: d.value)
        case UInt8(ascii: "S"):
            let raw = bytes(wab_fv_bytes(v))
            if let s = String(validating: raw, as: UTF8.self) { return .string(s) }
            return .bytes(raw)
        case UInt8(ascii: "x"): return .bytes(bytes(wab_fv_bytes(v)))
        case UInt8(ascii: "T"): return .timestamp(wab_fv_u64(v))
        case UInt8(ascii: "F"): return .table(table(wab_fv_table(v)))
        case UInt8(ascii: "A"):
            let a = wab_fv_array(v)
            var items: [AMQPFieldValue] = []
            if a.num_entries > 0, let entries = a.entries {
                for i in 0..<Int(a.num_entries) { items.append(value(entries + i)) }
            }
            return .array(items)
        default: return .void
        }
    }

    static func properties(_ p: UnsafePointer<amqp_basic_properties_t>) -> AMQPProperties {
        let c = p.pointee
        let f = c._flags
        func has(_ bit: Int) -> Bool { f & UInt32(1 << bit) != 0 }
        var out = AMQPProperties()
        if has(15) { out.contentType = string(c.content_type) }
        if has(14) { out.contentEncoding = string(c.content_encoding) }
        if has(13) { out.headers = table(c.headers) }
        if has(12) { out.deliveryMode = AMQPProperties.DeliveryMode(rawValue: c.delivery_mode) }
        if has(11) { out.priority = c.priority }
        if has(10) { out.correlationID = string(c.correlation_id) }
        if has(9) { out.replyTo = string(c.reply_to) }
        if has(8) { out.expiration = string(c.expiration) }
        if has(7) { out.messageID = string(c.message_id) }
        if has(6) { out.timestamp = c.timestamp }
        if has(5) { out.type = string(c.type) }
        if has(4) { out.userID = string(c.user_id) }
        if has(3) { out.appID = string(c.app_id) }
        if has(2) { out.clusterID = string(c.cluster_id) }
        return out
    }
}
