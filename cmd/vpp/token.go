package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"

	"github.com/vppctl/vpp/internal/auth"
)

// newTokenCmd is `vpp token`: device token keys and tokens for ingest.
func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create device token keys and issue device tokens for ingest",
		Long: `Devices and gateways authenticate to vpp ingest with a bearer token: a JWT
signed with HMAC-SHA256 (a shared secret) or Ed25519 (ingest holds only the
public key), with aud "vpp-ingest", an exp, and claims naming what it covers:
dev (one device ID), devs (a list), site or sites (every device of the sites);
without them, sub is the device ID.

  vpp token keygen --type ed25519 --out ingest.key     # writes ingest.key and ingest.key.pub
  vpp ingest --auth-key ingest.key.pub ...
  vpp token issue --key ingest.key --device dev-000001 --ttl 720h`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTokenKeygenCmd(), newTokenIssueCmd())
	return cmd
}

func newTokenKeygenCmd() *cobra.Command {
	var typ, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Write a new token key: an HMAC secret, or an Ed25519 key pair",
		Long: `keygen writes a new key with mode 0600 and refuses to overwrite one unless --force.

--type hmac writes a 256-bit secret (64 hex digits) to --out: ingest's
--auth-key and token issue's --key both take that file.
--type ed25519 writes the private key (PKCS #8 PEM) to --out, for token issue
and vpp sim --token-key, and the public key (PEM) to --out.pub, for ingest's
--auth-key: ingest then cannot mint tokens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError{errors.New("--out is required")}
			}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			write := func(path string, b []byte, mode os.FileMode) error {
				f, err := os.OpenFile(path, flags, mode)
				if err != nil {
					return fmt.Errorf("write key: %w", err)
				}
				_, err = f.Write(b)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return fmt.Errorf("write key %s: %w", path, err)
				}
				return nil
			}
			switch typ {
			case "hmac":
				if err := write(out, auth.GenerateHMACSecret(), 0o600); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "HMAC-SHA256 secret written to %s (ingest --auth-key and token issue --key)\n", out)
			case "ed25519":
				priv, pub, err := auth.GenerateEd25519()
				if err != nil {
					return err
				}
				if err := write(out, priv, 0o600); err != nil {
					return err
				}
				if err := write(out+".pub", pub, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Ed25519 private key written to %s (token issue --key), public key to %s.pub (ingest --auth-key)\n", out, out)
			default:
				return usageError{fmt.Errorf("--type %q: want hmac or ed25519", typ)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "ed25519", "key type: ed25519 or hmac")
	f.StringVar(&out, "out", "", "write the key to this `file` (ed25519 also writes FILE.pub)")
	f.BoolVar(&force, "force", false, "overwrite existing key files")
	return cmd
}

func newTokenIssueCmd() *cobra.Command {
	var (
		keyFile, device, site, subject string
		devices, sites                 []string
		ttl                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Print a device token",
		Long: `issue prints a token for a device (--device), a gateway's devices (--devices),
or every device of sites (--site, --sites); they combine. The token expires
after --ttl. Keep it secret: anyone holding it may send readings for what it
covers until it expires.`,
		Example: `  vpp token issue --key ingest.key --device dev-000001 --ttl 720h
  vpp token issue --key ingest.key --devices gw7-a,gw7-b --site site-0042 --ttl 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" {
				return usageError{errors.New("--key is required (the HMAC secret or Ed25519 private key)")}
			}
			if device == "" && len(devices) == 0 && site == "" && len(sites) == 0 {
				return usageError{errors.New("name what the token covers: --device, --devices, --site or --sites")}
			}
			if ttl <= 0 {
				return usageError{errors.New("--ttl must be positive")}
			}
			key, err := auth.LoadKey(keyFile)
			if err != nil {
				return usageError{fmt.Errorf("--key: %w", err)}
			}
			if !key.CanSign() {
				return usageError{fmt.Errorf("--key: a %s cannot sign; give the HMAC secret or the Ed25519 private key", key)}
			}
			if subject == "" {
				subject = device
			}
			tok, err := auth.Issue(key, auth.Claims{
				RegisteredClaims: jwt.RegisteredClaims{Subject: subject},
				Device:           device, Devices: trimAll(devices), Site: site, Sites: trimAll(sites),
			}, time.Now(), ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "signing key `file`: the HMAC secret or the Ed25519 private key (vpp token keygen)")
	f.StringVar(&device, "device", "", "device ID the token covers (claim dev)")
	f.StringSliceVar(&devices, "devices", nil, "device IDs the token covers, comma-separated (claim devs)")
	f.StringVar(&site, "site", "", "site whose every device the token covers (claim site)")
	f.StringSliceVar(&sites, "sites", nil, "sites whose devices the token covers, comma-separated (claim sites)")
	f.StringVar(&subject, "subject", "", "the token's sub, e.g. a gateway name (default --device)")
	f.DurationVar(&ttl, "ttl", 24*time.Hour, "lifetime of the token")
	return cmd
}

// trimAll drops surrounding spaces and empty entries.
func trimAll(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
