// Package auth issues and verifies the bearer tokens that devices and
// gateways present to vpp ingest on the WebSocket handshake.
//
// A token is a JWT (RFC 7519) signed with HMAC-SHA256 ("HS256", a shared
// secret) or Ed25519 ("EdDSA", a key pair: ingest holds only the public
// key). Parsing and signature checks are github.com/golang-jwt/jwt/v5's;
// this package pins the accepted algorithm to the one of the configured
// key, requires exp and the audience AudienceIngest, and turns the claims
// into a Grant: the devices and sites the token covers.
//
// Claims beyond the registered ones:
//
//	dev    one device ID
//	devs   a list of device IDs (a gateway)
//	site   one site ID: every device of the site
//	sites  a list of site IDs
//
// A token with none of them covers the device named by sub.
package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AudienceIngest is the audience ("aud") every device token must name.
const AudienceIngest = "vpp-ingest"

// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// MaxTokenBytes bounds a token's length; longer ones are refused unparsed.
const MaxTokenBytes = 8 << 10

// MaxGrantEntries bounds the devices plus sites one token may list.
const MaxGrantEntries = 100_000

// minHMACSecret is the shortest HMAC secret accepted, in bytes (RFC 7518
// §3.2: at least the hash size).
const minHMACSecret = 32

// Errors of Verify, for the caller to classify a refusal. The wrapped
// detail never contains the token.
var (
	// ErrMissing means no token was presented.
	ErrMissing = errors.New("token missing")
	// ErrExpired means the token's exp lies in the past.
	ErrExpired = errors.New("token expired")
	// ErrInvalid means the token is malformed, badly signed, signed with
	// another algorithm, not yet valid, for another audience or binds no
	// device or site.
	ErrInvalid = errors.New("token invalid")
)

// Claims are the claims of a device token.
type Claims struct {
	jwt.RegisteredClaims
	// Device is one device ID the token covers.
	Device string `json:"dev,omitempty"`
	// Devices are device IDs the token covers (a gateway).
	Devices []string `json:"devs,omitempty"`
	// Site is a site whose every device the token covers.
	Site string `json:"site,omitempty"`
	// Sites are sites whose every device the token covers.
	Sites []string `json:"sites,omitempty"`
}

// Grant is what a verified token allows: readings of its devices, and of
// every device of its sites.
type Grant struct {
	// Subject is the token's sub, for logs.
	Subject string
	// Expires is the token's exp.
	Expires time.Time
	devices map[string]struct{}
	sites   map[string]struct{}
}

// Allows reports whether the grant covers a reading of device at site.
func (g *Grant) Allows(device, site string) bool {
	if _, ok := g.devices[device]; ok {
		return true
	}
	_, ok := g.sites[site]
	return ok
}

// String describes the grant for logs (counts, not the lists).
func (g *Grant) String() string {
	return fmt.Sprintf("sub=%q devices=%d sites=%d", g.Subject, len(g.devices), len(g.sites))
}

// newGrant builds the grant of verified claims.
func newGrant(c *Claims) (*Grant, error) {
	g := &Grant{Subject: c.Subject, devices: map[string]struct{}{}, sites: map[string]struct{}{}}
	if c.ExpiresAt != nil {
		g.Expires = c.ExpiresAt.Time
	}
	if n := len(c.Devices) + len(c.Sites); n > MaxGrantEntries {
		return nil, fmt.Errorf("%w: lists %d devices and sites, at most %d", ErrInvalid, n, MaxGrantEntries)
	}
	add := func(m map[string]struct{}, ids ...string) {
		for _, id := range ids {
			if id != "" {
				m[id] = struct{}{}
			}
		}
	}
	add(g.devices, c.Device)
	add(g.devices, c.Devices...)
	add(g.sites, c.Site)
	add(g.sites, c.Sites...)
	if len(g.devices) == 0 && len(g.sites) == 0 {
		add(g.devices, c.Subject)
	}
	if len(g.devices) == 0 && len(g.sites) == 0 {
		return nil, fmt.Errorf("%w: binds no device or site (dev, devs, site, sites or sub)", ErrInvalid)
	}
	return g, nil
}

// Key is a loaded key: an HMAC secret, or an Ed25519 key (the private key
// signs, the public key verifies).
type Key struct {
	secret []byte
	pub    ed25519.PublicKey
	priv   ed25519.PrivateKey
}

// Algorithm is the JWT algorithm of the key: "HS256" or "EdDSA".
func (k *Key) Algorithm() string {
	if k.secret != nil {
		return jwt.SigningMethodHS256.Alg()
	}
	return jwt.SigningMethodEdDSA.Alg()
}

// CanSign reports whether the key can issue tokens (an HMAC secret or an
// Ed25519 private key).
func (k *Key) CanSign() bool { return k.secret != nil || k.priv != nil }

// String names the key's kind, never its material.
func (k *Key) String() string {
	switch {
	case k.secret != nil:
		return "HMAC-SHA256 secret"
	case k.priv != nil:
		return "Ed25519 private key"
	}
	return "Ed25519 public key"
}

// NewHMACKey returns a key for an HMAC-SHA256 secret of at least 32 bytes.
func NewHMACKey(secret []byte) (*Key, error) {
	if len(secret) < minHMACSecret {
		return nil, fmt.Errorf("HMAC secret has %d bytes, want at least %d", len(secret), minHMACSecret)
	}
	return &Key{secret: slices.Clone(secret)}, nil
}

// NewEd25519Key returns a signing key for an Ed25519 private key.
func NewEd25519Key(priv ed25519.PrivateKey) *Key {
	return &Key{priv: priv, pub: priv.Public().(ed25519.PublicKey)}
}

// NewEd25519PublicKey returns a verification-only key.
func NewEd25519PublicKey(pub ed25519.PublicKey) *Key { return &Key{pub: pub} }

// LoadKey reads a key file: a PEM "PUBLIC KEY" (Ed25519, verification
// only), a PEM "PRIVATE KEY" (Ed25519 in PKCS #8, signs and verifies), or
// else an HMAC secret (the file's bytes, surrounding whitespace trimmed, at
// least 32 bytes). Errors name the file, never its contents.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses the contents of a key file (see LoadKey).
func ParseKey(b []byte) (*Key, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		switch blk.Type {
		case "PUBLIC KEY":
			pk, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse public key: %w", err)
			}
			pub, ok := pk.(ed25519.PublicKey)
			if !ok {
				return nil, fmt.Errorf("public key is %T, want Ed25519", pk)
			}
			return NewEd25519PublicKey(pub), nil
		case "PRIVATE KEY":
			sk, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse private key: %w", err)
			}
			priv, ok := sk.(ed25519.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, want Ed25519", sk)
			}
			return NewEd25519Key(priv), nil
		default:
			return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY or PRIVATE KEY (Ed25519)", blk.Type)
		}
	}
	if strings.Contains(string(b), "-----BEGIN") {
		return nil, errors.New("malformed PEM")
	}
	return NewHMACKey([]byte(strings.TrimSpace(string(b))))
}

// Verifier checks device tokens. It is safe for concurrent use.
type Verifier struct {
	key    *Key
	parser *jwt.Parser
}

// VerifierOptions tune a Verifier. Start from DefaultVerifierOptions; the
// zero value allows no clock skew.
type VerifierOptions struct {
	// Leeway is the clock skew allowed on exp, nbf and iat
	// (DefaultLeeway in DefaultVerifierOptions; 0 or negative: none).
	Leeway time.Duration
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
}

// DefaultVerifierOptions returns the VerifierOptions of the defaults: a
// leeway of DefaultLeeway and the system clock.
func DefaultVerifierOptions() VerifierOptions { return VerifierOptions{Leeway: DefaultLeeway} }

// NewVerifier returns a verifier that accepts only tokens signed by key
// with key's algorithm.
func NewVerifier(key *Key, o VerifierOptions) *Verifier {
	leeway := max(0, o.Leeway)
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{key.Algorithm()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithAudience(AudienceIngest),
	}
	if o.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(o.Now))
	}
	return &Verifier{key: key, parser: jwt.NewParser(opts...)}
}

// Key is the verifier's key.
func (v *Verifier) Key() *Key { return v.key }

// Verify checks token and returns its grant. Errors wrap ErrMissing,
// ErrExpired or ErrInvalid and never contain the token.
func (v *Verifier) Verify(token string) (*Grant, error) {
	if token == "" {
		return nil, ErrMissing
	}
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenBytes)
	}
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, v.keyFunc)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %s", ErrInvalid, describe(err))
	}
	return newGrant(&c)
}

// keyFunc hands jwt the verification key. The algorithm was already
// checked against WithValidMethods; the type switch is a second guard.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.key.secret != nil {
			return v.key.secret, nil
		}
	case *jwt.SigningMethodEd25519:
		if v.key.pub != nil {
			return v.key.pub, nil
		}
	}
	return nil, fmt.Errorf("algorithm %s not accepted", t.Method.Alg())
}

// describe reduces a jwt error to its category, so that nothing of the
// token (jwt's JSON errors may quote it) reaches logs or clients.
func describe(err error) string {
	for _, e := range []error{
		jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenNotValidYet, jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenInvalidClaims,
	} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "unverifiable"
}

// Issue signs claims with key, setting aud to AudienceIngest, iat to now
// and exp to now+ttl.
func Issue(key *Key, c Claims, now time.Time, ttl time.Duration) (string, error) {
	if !key.CanSign() {
		return "", fmt.Errorf("issue token: a %s cannot sign (use the HMAC secret or the Ed25519 private key)", key)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("issue token: ttl %s must be positive", ttl)
	}
	c.Audience = jwt.ClaimStrings{AudienceIngest}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	var (
		t  *jwt.Token
		sk any
	)
	if key.secret != nil {
		t, sk = jwt.NewWithClaims(jwt.SigningMethodHS256, c), key.secret
	} else {
		t, sk = jwt.NewWithClaims(jwt.SigningMethodEdDSA, c), key.priv
	}
	s, err := t.SignedString(sk)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// SiteMinter returns a function that issues, for a connection carrying
// devices at sites, a token for those sites valid for ttl, with subject
// sub. Its signature matches sim.TokenFunc.
func SiteMinter(key *Key, sub string, ttl time.Duration) func(ctx context.Context, devices, sites []string) (string, error) {
	return func(_ context.Context, _, sites []string) (string, error) {
		return Issue(key, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub}, Sites: sites}, time.Now(), ttl)
	}
}

// NewEphemeral returns a new in-memory Ed25519 signing key, for a
// one-process pipeline whose ingest and devices share it.
func NewEphemeral() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return NewEd25519Key(priv), nil
}
