package wire

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestCloseMessage checks that a value written between OpenMessage and
// CloseMessage ends up exactly as protowire.AppendBytes writes it, whether
// the guessed prefix was too short, right or too long.
func TestCloseMessage(t *testing.T) {
	for _, size := range []int{0, 1, 127, 128, 300, 16383, 16384, 70_000} {
		value := bytes.Repeat([]byte{0xa5}, size)
		want := protowire.AppendBytes([]byte("head"), value)
		for guess := 1; guess <= 4; guess++ {
			b, at := OpenMessage([]byte("head"), guess)
			b = CloseMessage(append(b, value...), at, guess)
			if !bytes.Equal(b, want) {
				t.Fatalf("size %d, guess %d: %d bytes, want %d", size, guess, len(b), len(want))
			}
		}
	}
}
