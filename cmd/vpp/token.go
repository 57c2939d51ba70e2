package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	cmd.AddCommand(newTokenKeygenCmd(nil), newTokenIssueCmd(nil))
	return cmd
}

// Defaults of vpp token's flags.
const (
	defaultKeyType  = "ed25519"
	defaultTokenTTL = 24 * time.Hour
)

// tokenKeygenOptions are the parsed flags of vpp token keygen.
type tokenKeygenOptions struct {
	typ, out string
	force    bool
	stdout   io.Writer // what was written where
}

// newTokenKeygenCmd is `vpp token keygen`; runF, when not nil, runs
// instead of runTokenKeygen with the parsed options (for tests).
func newTokenKeygenCmd(runF func(context.Context, *tokenKeygenOptions) error) *cobra.Command {
	o := &tokenKeygenOptions{}
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
			if o.out == "" {
				return usageError{errors.New("--out is required")}
			}
			if o.typ != "hmac" && o.typ != "ed25519" {
				return usageError{fmt.Errorf("--type %q: want hmac or ed25519", o.typ)}
			}
			o.stdout = cmd.OutOrStdout()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runTokenKeygen(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.typ, "type", defaultKeyType, "key type: ed25519 or hmac")
	f.StringVar(&o.out, "out", "", "write the key to this `file` (ed25519 also writes FILE.pub)")
	f.BoolVar(&o.force, "force", false, "overwrite existing key files")
	return cmd
}

// runTokenKeygen writes the key files o names.
func runTokenKeygen(_ context.Context, o *tokenKeygenOptions) error {
	out := o.out
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if o.force {
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
	switch o.typ {
	case "hmac":
		if err := write(out, auth.GenerateHMACSecret(), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(o.stdout, "HMAC-SHA256 secret written to %s (ingest --auth-key and token issue --key)\n", out)
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
		fmt.Fprintf(o.stdout, "Ed25519 private key written to %s (token issue --key), public key to %s.pub (ingest --auth-key)\n", out, out)
	default:
		return usageError{fmt.Errorf("--type %q: want hmac or ed25519", o.typ)}
	}
	return nil
}

// tokenIssueOptions are the parsed flags of vpp token issue.
type tokenIssueOptions struct {
	keyFile, device, site, subject string
	devices, sites                 []string
	ttl                            time.Duration
	now                            func() time.Time
	stdout                         io.Writer // the token
}

// newTokenIssueCmd is `vpp token issue`; runF, when not nil, runs instead
// of runTokenIssue with the parsed options (for tests).
func newTokenIssueCmd(runF func(context.Context, *tokenIssueOptions) error) *cobra.Command {
	o := &tokenIssueOptions{now: time.Now}
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
			if o.keyFile == "" {
				return usageError{errors.New("--key is required (the HMAC secret or Ed25519 private key)")}
			}
			o.devices, o.sites = trimAll(o.devices), trimAll(o.sites)
			if o.device == "" && len(o.devices) == 0 && o.site == "" && len(o.sites) == 0 {
				return usageError{errors.New("name what the token covers: --device, --devices, --site or --sites")}
			}
			if o.ttl <= 0 {
				return usageError{errors.New("--ttl must be positive")}
			}
			if o.subject == "" {
				o.subject = o.device
			}
			o.stdout = cmd.OutOrStdout()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runTokenIssue(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.keyFile, "key", "", "signing key `file`: the HMAC secret or the Ed25519 private key (vpp token keygen)")
	f.StringVar(&o.device, "device", "", "device ID the token covers (claim dev)")
	f.StringSliceVar(&o.devices, "devices", nil, "device IDs the token covers, comma-separated (claim devs)")
	f.StringVar(&o.site, "site", "", "site whose every device the token covers (claim site)")
	f.StringSliceVar(&o.sites, "sites", nil, "sites whose devices the token covers, comma-separated (claim sites)")
	f.StringVar(&o.subject, "subject", "", "the token's sub, e.g. a gateway name (default --device)")
	f.DurationVar(&o.ttl, "ttl", defaultTokenTTL, "lifetime of the token")
	return cmd
}

// runTokenIssue signs the token o describes and prints it.
func runTokenIssue(_ context.Context, o *tokenIssueOptions) error {
	key, err := auth.LoadKey(o.keyFile)
	if err != nil {
		return usageError{fmt.Errorf("--key: %w", err)}
	}
	if !key.CanSign() {
		return usageError{fmt.Errorf("--key: a %s cannot sign; give the HMAC secret or the Ed25519 private key", key)}
	}
	tok, err := auth.Issue(key, auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: o.subject},
		Device:           o.device, Devices: o.devices, Site: o.site, Sites: o.sites,
	}, o.now(), o.ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(o.stdout, tok)
	return nil
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
