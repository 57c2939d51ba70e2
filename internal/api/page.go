package api

// page.go serves a small live web page over the fleet snapshots: the fleet
// KPIs, the region table and sparklines, updated by Server-Sent Events. The
// page is one self-contained HTML document (inline CSS and JavaScript, no
// external resources) embedded in the binary. NewMux mounts it at / and
// StreamPath.

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
)

// StreamPath is the Server-Sent Events stream the page handler serves
// next to the page itself (GET /).
const StreamPath = "/api/stream"

// Defaults of PageConfig.
const (
	// DefaultMinInterval is the shortest time between two events of one
	// stream: changes in between are coalesced into the latest state.
	DefaultMinInterval = 500 * time.Millisecond
	// DefaultHeartbeat is how often a stream sends a comment line so that
	// proxies and clients see the connection is alive.
	DefaultHeartbeat = 15 * time.Second
	// DefaultWriteTimeout bounds each write to a stream: a client that does
	// not read for this long is dropped.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxStreams is the number of concurrent streams served; more
	// are answered 503.
	DefaultMaxStreams = 256
)

//go:embed page.html
var page []byte

// PageConfig configures the page handler.
type PageConfig struct {
	// Source serves the snapshots; required.
	Source fleet.SnapshotSource
	// Changed returns a channel closed when the next snapshot is published
	// (reader.Reader.Changed). Nil polls Source every MinInterval.
	Changed func() <-chan struct{}
	// MinInterval is the shortest time between two events of one stream
	// (default DefaultMinInterval).
	MinInterval time.Duration
	// Heartbeat is the interval of the keep-alive comments (default
	// DefaultHeartbeat).
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a stream (default
	// DefaultWriteTimeout).
	WriteTimeout time.Duration
	// MaxStreams bounds the concurrent streams (default DefaultMaxStreams).
	MaxStreams int
	// Now gives the data age; nil means time.Now.
	Now func() time.Time
	// Logger receives stream errors (default slog.Default()).
	Logger *slog.Logger
}

// Page returns the page and the event stream over src with the default
// settings; changed is reader.Reader.Changed (nil polls src). It serves
// GET / (the page) and GET /api/stream (the events), and 404 otherwise.
func Page(src fleet.SnapshotSource, changed func() <-chan struct{}) http.Handler {
	h, err := NewPage(PageConfig{Source: src, Changed: changed})
	if err != nil {
		// Only a nil source fails; serve the error rather than panic.
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
	}
	return h
}

// NewPage returns the page and event stream handler configured by cfg.
func NewPage(cfg PageConfig) (http.Handler, error) {
	if cfg.Source == nil {
		return nil, fmt.Errorf("web handler: no snapshot source")
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	csp, err := contentSecurityPolicy(page)
	if err != nil {
		return nil, fmt.Errorf("web handler: %w", err)
	}
	s := &server{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "web"),
		slots: make(chan struct{}, cfg.MaxStreams),
		csp:   csp,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET "+StreamPath, s.stream)
	return mux, nil
}

// server holds the handler's configuration; it has no other mutable state
// than the stream slots.
type server struct {
	cfg   PageConfig
	log   *slog.Logger
	slots chan struct{}
	csp   string
}

func (s *server) page(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(page)
}

// contentSecurityPolicy allows exactly the page's inline scripts (by hash),
// its inline styles, and connections to its own origin: nothing external
// can load even if the page were changed to ask for it.
func contentSecurityPolicy(html []byte) (string, error) {
	var hashes []string
	rest := html
	for {
		i := bytes.Index(rest, []byte("<script>"))
		if i < 0 {
			break
		}
		rest = rest[i+len("<script>"):]
		j := bytes.Index(rest, []byte("</script>"))
		if j < 0 {
			return "", fmt.Errorf("page: unterminated <script>")
		}
		sum := sha256.Sum256(rest[:j])
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		rest = rest[j:]
	}
	if len(hashes) == 0 {
		return "", fmt.Errorf("page: no inline script")
	}
	return "default-src 'none'; script-src " + strings.Join(hashes, " ") +
		"; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", nil
}
