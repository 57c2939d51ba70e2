package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/pflag"

	"github.com/vppctl/vpp/internal/api"
	"github.com/vppctl/vpp/internal/tlsutil"
)

// apiFlags guard the HTTP API of aggregate and the demo: a bearer token
// for /api/* and /metrics, the operator token for dispatch writes, the
// CORS origin, and (aggregate) TLS.
type apiFlags struct {
	guard            api.GuardOptions
	tlsCert, tlsKey  string
	registerTLSFlags bool
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.guard.Token, "api-token", "", "require this bearer token on /api/* and /metrics (at least 16 characters; /healthz and /readyz stay open; prefer $VPP_API_TOKEN over the command line)")
	fs.StringVar(&f.guard.OperatorToken, "operator-token", "", "allow creating and cancelling dispatches (POST /api/dispatches, DELETE /api/dispatches/ID) with this bearer token (at least 16 characters, not the --api-token; without it those answer 403; prefer $VPP_OPERATOR_TOKEN over the command line)")
	fs.StringVar(&f.guard.CORSOrigin, "cors-origin", "", "allow browsers on this origin (e.g. https://ops.example.com, or *) to read the API; default: no CORS headers")
	if f.registerTLSFlags {
		fs.StringVar(&f.tlsCert, "tls-cert", "", "serve --http over TLS with this certificate `file` (PEM; reloaded when it changes)")
		fs.StringVar(&f.tlsKey, "tls-key", "", "private key `file` of --tls-cert (PEM)")
	}
}

// validate checks the guard options.
func (f *apiFlags) validate() error {
	if err := f.guard.Validate(); err != nil {
		return usageError{fmt.Errorf("--api-token/--operator-token: %w", err)}
	}
	return nil
}

// listen opens the API's listener on addr, in TLS when a certificate is
// configured, and says whether it did.
func (f *apiFlags) listen(addr string, log *slog.Logger) (net.Listener, bool, error) {
	var tc *tls.Config
	if f.tlsCert != "" || f.tlsKey != "" {
		var err error
		if tc, err = tlsutil.ServerConfig(f.tlsCert, f.tlsKey, log); err != nil {
			return nil, false, usageError{fmt.Errorf("--tls-cert/--tls-key: %w", err)}
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("http listen %s: %w", addr, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return ln, tc != nil, nil
}
