package auth

import (
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func hmacKey(t testing.TB) *Key {
	t.Helper()
	k, err := NewHMACKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func verifier(k *Key) *Verifier {
	return NewVerifier(k, VerifierOptions{Now: func() time.Time { return testNow }, Leeway: 5 * time.Second})
}

func TestIssueVerify(t *testing.T) {
	priv, pub, err := GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ParseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ParseKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if pk.CanSign() || !sk.CanSign() || pk.Algorithm() != "EdDSA" {
		t.Fatalf("keys: %v %v", sk, pk)
	}
	hk, err := ParseKey(GenerateHMACSecret())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		sign, vfy *Key
		claims    Claims
		dev, site string
		allow     bool
		deny      [2]string
	}{
		{"ed25519 dev", sk, pk, Claims{Device: "d1"}, "d1", "any", true, [2]string{"d2", "any"}},
		{"hmac devs", hk, hk, Claims{Devices: []string{"a", "b"}}, "b", "s", true, [2]string{"c", "s"}},
		{"site", hk, hk, Claims{Site: "s1"}, "x", "s1", true, [2]string{"x", "s2"}},
		{"sites", sk, pk, Claims{Sites: []string{"s1", "s2"}}, "x", "s2", true, [2]string{"x", "s3"}},
		{"sub", hk, hk, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "dev-9"}}, "dev-9", "s", true, [2]string{"dev-8", "s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Issue(tc.sign, tc.claims, testNow, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			g, err := verifier(tc.vfy).Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if g.Allows(tc.dev, tc.site) != tc.allow || g.Allows(tc.deny[0], tc.deny[1]) {
				t.Fatalf("grant %v", g)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := hmacKey(t)
	other, _ := NewHMACKey([]byte("another-secret-another-secret-xx"))
	priv, _, _ := GenerateEd25519()
	ek, _ := ParseKey(priv)
	v := verifier(k)
	good := func(c Claims, now time.Time, ttl time.Duration) string {
		s, err := Issue(k, c, now, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherSig, _ := Issue(other, Claims{Device: "d"}, testNow, time.Minute)
	edSig, _ := Issue(ek, Claims{Device: "d"}, testNow, time.Minute)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Device: "d",
		RegisteredClaims: jwt.RegisteredClaims{Audience: jwt.ClaimStrings{AudienceIngest}}}).SignedString(k.secret)
	noAud, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Device: "d",
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(testNow.Add(time.Hour))}}).SignedString(k.secret)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, Claims{Device: "d", RegisteredClaims: jwt.RegisteredClaims{
		Audience: jwt.ClaimStrings{AudienceIngest}, ExpiresAt: jwt.NewNumericDate(testNow.Add(time.Hour))}}).SignedString(k.secret)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Device: "d", RegisteredClaims: jwt.RegisteredClaims{
		Audience: jwt.ClaimStrings{AudienceIngest}, ExpiresAt: jwt.NewNumericDate(testNow.Add(time.Hour))}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, tc := range []struct {
		name, tok string
		want      error
	}{
		{"missing", "", ErrMissing},
		{"garbage", "not.a.token", ErrInvalid},
		{"expired", good(Claims{Device: "d"}, testNow.Add(-time.Hour), time.Minute), ErrExpired},
		{"within leeway", good(Claims{Device: "d"}, testNow.Add(-62*time.Second), time.Minute), nil},
		{"future iat", good(Claims{Device: "d"}, testNow.Add(time.Hour), time.Hour), ErrInvalid},
		{"other secret", otherSig, ErrInvalid},
		{"ed25519 for an hmac verifier", edSig, ErrInvalid},
		{"hs512", hs512, ErrInvalid},
		{"alg none", none, ErrInvalid},
		{"no exp", noExp, ErrInvalid},
		{"no aud", noAud, ErrInvalid},
		{"binds nothing", good(Claims{}, testNow, time.Minute), ErrInvalid},
		{"too long", strings.Repeat("a", MaxTokenBytes+1), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(tc.tok)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if len(tc.tok) > 8 && strings.Contains(err.Error(), tc.tok[len(tc.tok)-8:]) {
				t.Fatalf("error %q quotes the token", err)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tooshort\n"), 0o600)
	if _, err := LoadKey(short); err == nil || strings.Contains(err.Error(), "tooshort") {
		t.Fatalf("short secret: %v", err)
	}
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, GenerateHMACSecret(), 0o600)
	if k, err := LoadKey(ok); err != nil || k.Algorithm() != "HS256" {
		t.Fatalf("hmac: %v", err)
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
	if _, err := LoadKey(bad); err == nil {
		t.Fatal("certificate accepted as a key")
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/telemetry?token=q", nil)
	if got := FromRequest(r); got != "q" {
		t.Fatalf("query: %q", got)
	}
	r.Header.Set("Authorization", "Bearer h")
	if got := FromRequest(r); got != "h" {
		t.Fatalf("header: %q", got)
	}
	r.Header.Set("Authorization", "Basic h")
	if got := FromRequest(r); got != "" {
		t.Fatalf("basic: %q", got)
	}
}
