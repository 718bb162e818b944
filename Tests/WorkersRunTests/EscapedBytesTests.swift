import Testing
@testable import WorkersRun

/// Bytes that are not UTF-8 ride through `String`s and come out as they went in.
@Suite struct EscapedBytesTests {
    @Test func everySingleByteRoundTrips() {
        for byte in UInt8.min...UInt8.max {
            #expect(String(escaping: [byte]).escapedBytes == [byte])
        }
    }

    @Test(arguments: [
        [0x63, 0x61, 0x66, 0xE9],            // Latin-1 "café"
        [0xC0, 0x80],                        // an overlong NUL
        [0xED, 0xA0, 0x80],                  // a UTF-8-encoded surrogate
        [0xF4, 0x8F, 0xB9, 0x81],            // U+10FE41, a scalar of the escape block itself
        [0xF4, 0x90, 0x80, 0x80],            // above U+10FFFF
        [0xE2, 0x82],                        // a sequence cut short
        [0x61, 0xFF, 0xFE, 0x62],
    ] as [[UInt8]])
    func invalidAndAmbiguousSequencesRoundTrip(_ bytes: [UInt8]) {
        #expect(String(escaping: bytes).escapedBytes == bytes)
    }

    /// Every byte string of up to two bytes, and every lead byte of a longer sequence followed
    /// by continuation bytes at each boundary of the UTF-8 ranges.
    @Test func byteStringsRoundTripExhaustively() {
        var failures: [[UInt8]] = []
        func check(_ bytes: [UInt8]) { if String(escaping: bytes).escapedBytes != bytes { failures.append(bytes) } }
        for first in UInt8.min...UInt8.max {
            for second in UInt8.min...UInt8.max {
                check([first, second])
            }
        }
        let edges: [UInt8] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xB7, 0xB8, 0xBB, 0xBC, 0xBF, 0xC0, 0xF4]
        for lead in UInt8(0xE0)...0xF7 {
            for a in edges {
                for b in edges {
                    check([lead, a, b])
                    for c in edges {
                        check([lead, a, b, c])
                    }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    @Test func validUTF8IsTheSameText() {
        let text = "café ✓ 𝄞"
        #expect(String(escaping: Array(text.utf8)) == text)
        #expect(text.escapedBytes == Array(text.utf8))
    }

    @Test func escapedStringsBecomeCStringsOfTheOriginalBytes() {
        let name = String(escaping: [0x61, 0xE9])
        let bytes = withEscapedCStrings([name]) { pointers in
            (0..<2).map { UInt8(bitPattern: pointers[0]![$0]) } + [UInt8(bitPattern: pointers[0]![2])]
        }
        #expect(bytes == [0x61, 0xE9, 0])
    }
}
