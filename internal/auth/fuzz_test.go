package auth

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerifyToken feeds arbitrary strings to the verifier: it must never
// panic, must refuse anything not signed by the key, and an accepted token
// must bind a device or site.
func FuzzVerifyToken(f *testing.F) {
	k, err := NewHMACKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	v := verifier(k)
	for _, c := range []Claims{{Device: "d1"}, {Devices: []string{"a", "b"}}, {Site: "s"}, {Sites: []string{"s1"}}, {}} {
		tok, err := Issue(k, c, testNow, time.Minute)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := v.Verify(tok)
		if err != nil {
			if g != nil {
				t.Fatal("grant with an error")
			}
			if len(tok) >= 16 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error quotes the token: %v", err)
			}
			return
		}
		if len(g.devices) == 0 && len(g.sites) == 0 {
			t.Fatal("accepted a token that binds nothing")
		}
		if g.Expires.IsZero() {
			t.Fatal("accepted a token without exp")
		}
	})
}
