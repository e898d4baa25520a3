import CQRencode
import CZlib
import Foundation

/// QR codes as PNG images.
///
/// The module matrix comes from libqrencode (`QRcode_encodeString`, error
/// correction level M, 8-bit mode). The PNG writer is hand-written here: one
/// 8-bit grayscale image (IHDR, one IDAT compressed with zlib's `compress2`,
/// IEND, CRCs with zlib's `crc32`), each module `scale` pixels wide, with the
/// 4-module quiet zone the QR standard asks for. No filters, no interlace.
public enum QRImage {
    public struct EncodingFailed: Error, Sendable {}

    /// The dark/light modules of `text` (true = dark), row by row.
    public static func modules(_ text: String) throws(EncodingFailed) -> [[Bool]] {
        guard let qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1) else { throw EncodingFailed() }
        defer { QRcode_free(qr) }
        let width = Int(qr.pointee.width)
        var rows: [[Bool]] = []
        rows.reserveCapacity(width)
        for y in 0..<width {
            rows.append((0..<width).map { x in qr.pointee.data[y * width + x] & 1 == 1 })
        }
        return rows
    }

    /// `text` as a PNG.
    public static func png(_ text: String, scale: Int = 8, quietZone: Int = 4) throws(EncodingFailed) -> Data {
        let m = try modules(text)
        let size = (m.count + 2 * quietZone) * scale
        var raw = [UInt8]()
        raw.reserveCapacity((size + 1) * size)
        for py in 0..<size {
            raw.append(0) // filter: none
            let my = py / scale - quietZone
            for px in 0..<size {
                let mx = px / scale - quietZone
                let dark = my >= 0 && my < m.count && mx >= 0 && mx < m.count && m[my][mx]
                raw.append(dark ? 0 : 255)
            }
        }
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var ihdr = Data()
        ihdr.appendBE(UInt32(size))
        ihdr.appendBE(UInt32(size))
        ihdr.append(contentsOf: [8, 0, 0, 0, 0]) // depth 8, grayscale, deflate, no filter, no interlace
        chunk("IHDR", ihdr, into: &png)
        chunk("IDAT", try deflate(raw), into: &png)
        chunk("IEND", Data(), into: &png)
        return png
    }

    private static func deflate(_ bytes: [UInt8]) throws(EncodingFailed) -> Data {
        var length = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(length))
        let rc = compress2(&out, &length, bytes, uLong(bytes.count), 9)
        guard rc == Z_OK else { throw EncodingFailed() }
        return Data(out[0..<Int(length)])
    }

    private static func chunk(_ type: String, _ body: Data, into png: inout Data) {
        png.appendBE(UInt32(body.count))
        var typed = Data(type.utf8)
        typed.append(body)
        png.append(typed)
        let crc = typed.withUnsafeBytes { p in
            crc32(0, p.bindMemory(to: Bytef.self).baseAddress, uInt(typed.count))
        }
        png.appendBE(UInt32(crc))
    }
}

extension Data {
    mutating func appendBE(_ v: UInt32) {
        append(contentsOf: [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)])
    }
}
