package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

// GenerateHMACSecret returns a new random HMAC-SHA256 secret as the text
// of a key file: 64 hex digits (32 random bytes) and a newline. The secret
// is the text itself, as LoadKey reads it.
func GenerateHMACSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return []byte(hex.EncodeToString(b) + "\n")
}

// GenerateEd25519 returns a new Ed25519 key pair as PEM: the private key
// (PKCS #8, for `vpp token issue`) and the public key (PKIX, for ingest's
// --auth-key).
func GenerateEd25519() (privPEM, pubPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal private key: %w", err)
	}
	pb, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pb}), nil
}
