import AdminHTTP

/// A QR code drawn with Unicode half blocks, two module rows per text line.
///
/// The module matrix is libqrencode's, through `QRImage.modules` (the same
/// code the admin page's PNG uses); only the drawing is written here. Light
/// modules are drawn (`█ ▀ ▄`), dark ones left blank, which reads as a QR
/// code on the usual dark terminal background; `inverted` draws the dark
/// modules instead, for light backgrounds. A 2-module light border keeps
/// phone scanners happy without eating the screen.
enum TerminalQR {
    static let quietZone = 2

    static func render(_ text: String, inverted: Bool = false) throws -> String {
        let m = try QRImage.modules(text)
        let size = m.count + 2 * quietZone
        // "Drawn" = light on a dark terminal (or dark when inverted).
        func drawn(_ y: Int, _ x: Int) -> Bool {
            let my = y - quietZone, mx = x - quietZone
            let dark = my >= 0 && my < m.count && mx >= 0 && mx < m.count && m[my][mx]
            return dark == inverted
        }
        var lines: [String] = []
        var y = 0
        while y < size {
            var line = ""
            for x in 0..<size {
                let top = drawn(y, x)
                // An odd height leaves the last line's lower half as border.
                let bottom = y + 1 < size ? drawn(y + 1, x) : !inverted
                switch (top, bottom) {
                case (true, true): line += "█"
                case (true, false): line += "▀"
                case (false, true): line += "▄"
                case (false, false): line += " "
                }
            }
            lines.append(line)
            y += 2
        }
        return lines.joined(separator: "\n")
    }
}
