package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"

	"github.com/vppctl/vpp/internal/backoff"
)

// BrokerError is a connection to one broker that failed for a reason
// retrying does not cure: authentication, TLS verification or a listener
// speaking another protocol.
type BrokerError struct {
	// Broker is the address that failed.
	Broker string
	// Cause says what went wrong and what to change.
	Cause string
	// Err is the client's error.
	Err error
}

// Error implements error.
func (e *BrokerError) Error() string {
	return fmt.Sprintf("kafka %s: %s: %v", e.Broker, e.Cause, e.Err)
}

// Unwrap returns the client's error.
func (e *BrokerError) Unwrap() error { return e.Err }

// AuthzError is an operation the broker refused for lack of an ACL.
type AuthzError struct {
	// Brokers are the addresses the client spoke to.
	Brokers string
	// Operation is the ACL operation: READ, WRITE, CREATE, DESCRIBE.
	Operation string
	// Resource is what was refused: `topic vpp.telemetry`, `group
	// vpp-aggregate`, `the cluster`.
	Resource string
	// Grant says which ACL to add.
	Grant string
	// Err is the client's error.
	Err error
}

// Error implements error.
func (e *AuthzError) Error() string {
	return fmt.Sprintf("kafka %s: not authorized to %s %s: grant the user %s (%v)", e.Brokers, e.Operation, e.Resource, e.Grant, e.Err)
}

// Unwrap returns the client's error.
func (e *AuthzError) Unwrap() error { return e.Err }

// TopicDenied returns err as an *AuthzError for operation op (READ,
// WRITE, CREATE, DESCRIBE) on topic when the broker refused it for lack of
// an ACL, else err unchanged.
func (o Options) TopicDenied(err error, op, topic string) error {
	switch {
	case errors.Is(err, sarama.ErrTopicAuthorizationFailed):
		grant := fmt.Sprintf("%s on topic prefix %q (or on topic %q)", title(op), o.Prefix, topic)
		if op == "CREATE" {
			grant += ", or pre-create the topic"
		}
		return &AuthzError{Brokers: strings.Join(o.Brokers, ","), Operation: op, Resource: "topic " + topic, Grant: grant, Err: err}
	case errors.Is(err, sarama.ErrClusterAuthorizationFailed):
		return o.ClusterDenied(err, op)
	}
	return err
}

// GroupDenied is TopicDenied for consumer group group; topic is the topic
// the group reads, whose READ the broker checks too.
func (o Options) GroupDenied(err error, group, topic string) error {
	switch {
	case errors.Is(err, sarama.ErrGroupAuthorizationFailed):
		return &AuthzError{Brokers: strings.Join(o.Brokers, ","), Operation: "READ", Resource: "group " + group,
			Grant: fmt.Sprintf("Read on group %q (or on a prefix of it)", group), Err: err}
	case errors.Is(err, sarama.ErrTopicAuthorizationFailed):
		return o.TopicDenied(err, "READ", topic)
	}
	return o.ClusterDenied(err, "DESCRIBE")
}

// ClusterDenied is TopicDenied for a cluster operation.
func (o Options) ClusterDenied(err error, op string) error {
	if errors.Is(err, sarama.ErrClusterAuthorizationFailed) {
		return &AuthzError{Brokers: strings.Join(o.Brokers, ","), Operation: op, Resource: "the cluster",
			Grant: title(op) + " on the cluster", Err: err}
	}
	return err
}

// ProducerDenied explains an idempotent producer the broker refused to
// start (InitProducerId): the user may write to no topic. Other errors
// come back unchanged.
func (o Options) ProducerDenied(err error) error {
	if errors.Is(err, sarama.ErrClusterAuthorizationFailed) || errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		return &AuthzError{Brokers: strings.Join(o.Brokers, ","), Operation: "IDEMPOTENT_WRITE", Resource: "the cluster",
			Grant: fmt.Sprintf("Write on topic prefix %q (which allows idempotent producers), or IdempotentWrite on the cluster", o.Prefix), Err: err}
	}
	return err
}

// UnreachableError is a Kafka that none of the bootstrap brokers answered:
// every connection was refused, timed out or could not be resolved.
// Retrying may cure it (Kafka starting), so only the commands that must
// answer at once (vpp top --once) give up on it.
type UnreachableError struct {
	// Brokers are the bootstrap addresses tried.
	Brokers []string
	// Err is why the last attempt failed.
	Err error
	// ctxErr is the context's error when waiting ended it (Preflight).
	ctxErr error
	// full is the client's whole error when Err is its network cause.
	full error
}

// Error implements error.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach Kafka at %s: %v", strings.Join(e.Brokers, ","), e.Err)
}

// Unwrap returns the last attempt's error and, when waiting ended, the
// context's error.
func (e *UnreachableError) Unwrap() []error {
	errs := []error{e.Err}
	if e.full != nil {
		errs = append(errs, e.full)
	}
	if e.ctxErr != nil {
		errs = append(errs, e.ctxErr)
	}
	return errs
}

// Unreachable returns err as an *UnreachableError when it says that no
// broker could be connected to (refused, timed out, unknown host), else
// err unchanged. Its message names the network cause ("dial tcp …:
// connect: connection refused") rather than the client's wrapping.
func (o Options) Unreachable(err error) error {
	var (
		ue  *UnreachableError
		ne  net.Error
		op  *net.OpError
		dns *net.DNSError
	)
	switch {
	case err == nil, errors.As(err, &ue):
		return err
	case errors.Is(err, sarama.ErrOutOfBrokers), errors.Is(err, syscall.ECONNREFUSED),
		errors.As(err, &op), errors.As(err, &dns), errors.As(err, &ne) && ne.Timeout():
		switch {
		case errors.As(err, &op):
			return &UnreachableError{Brokers: o.Brokers, Err: op, full: err}
		case errors.As(err, &dns):
			return &UnreachableError{Brokers: o.Brokers, Err: dns, full: err}
		}
		return &UnreachableError{Brokers: o.Brokers, Err: err}
	}
	return err
}

// MissingTopicError is a topic that does not exist on the cluster: the
// readers never create topics, the aggregator does (with the same
// --topic-prefix).
type MissingTopicError struct {
	// Topic is the topic's full name.
	Topic string
	// Err is the client's error.
	Err error
}

// Error implements error.
func (e *MissingTopicError) Error() string {
	return fmt.Sprintf("topic %s does not exist: is an aggregator running with this --topic-prefix?", e.Topic)
}

// Unwrap returns the client's error.
func (e *MissingTopicError) Unwrap() error { return e.Err }

// Persistent reports whether err is one that retrying the same request
// soon will not cure: a refused ACL, a broker refusing the credentials or
// the handshake, an unreachable Kafka or a missing topic. A reader that
// must answer at once (vpp top --once) gives up on these; a long-running
// one keeps retrying and shows them.
func Persistent(err error) bool {
	var (
		be *BrokerError
		ae *AuthzError
		ue *UnreachableError
		me *MissingTopicError
	)
	return errors.As(err, &be) || errors.As(err, &ae) || errors.As(err, &ue) || errors.As(err, &me)
}

// title is "Write" for "WRITE".
func title(op string) string {
	if op == "" {
		return op
	}
	return op[:1] + strings.ToLower(op[1:])
}

// Explain classifies an error of a connection to broker addr: a
// *BrokerError naming the cause when retrying cannot help, and whether
// the error is one (fatal). Other errors (refused, timed out) come back
// unchanged with fatal false.
func (o Options) Explain(addr string, err error) (_ error, fatal bool) {
	be := func(cause string) (error, bool) { return &BrokerError{Broker: addr, Cause: cause, Err: err}, true }
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		recordHdr  tls.RecordHeaderError
		alert      tls.AlertError
		decodeErr  sarama.PacketDecodingError
		configErr  sarama.ConfigurationError
		mechanism  = o.Security.SASLMechanism
		tlsOn      = o.Security.TLS
		closedConn = errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
	)
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return be(fmt.Sprintf("authentication failed: user %q unknown or wrong password for %s", o.Security.User, mechanism))
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		return be(fmt.Sprintf("the broker does not accept SASL mechanism %s", mechanism))
	case errors.Is(err, sarama.ErrIllegalSASLState):
		return be("the broker refused the SASL handshake")
	case errors.As(err, &unknownCA):
		return be("TLS: certificate signed by an unknown authority (give its CA with --kafka-ca)")
	case errors.As(err, &hostname):
		return be("TLS: the certificate is not valid for this host (check the address or --kafka-tls-server-name)")
	case errors.As(err, &invalid):
		return be("TLS: the certificate is invalid (expired, not yet valid or not for TLS servers)")
	case errors.As(err, &recordHdr):
		return be("TLS: the broker does not speak TLS (a plaintext listener? drop --kafka-tls or use its TLS port)")
	case errors.As(err, &alert):
		return be("TLS: the broker refused the handshake (a client certificate missing or not trusted?)")
	case errors.As(err, &decodeErr):
		if !tlsOn {
			return be("unexpected reply: the listener speaks another protocol (TLS? then add --kafka-tls)")
		}
		return be("unexpected reply: the listener speaks another protocol")
	case errors.As(err, &configErr):
		return be("invalid client configuration")
	case closedConn && tlsOn:
		return &BrokerError{Broker: addr, Cause: "the broker closed the connection during the TLS handshake (not a TLS listener?)", Err: err}, false
	case closedConn && mechanism == "":
		return &BrokerError{Broker: addr, Cause: "the broker closed the connection (does the listener require TLS or SASL? see --kafka-tls, --kafka-sasl-mechanism)", Err: err}, false
	case closedConn:
		return &BrokerError{Broker: addr, Cause: "the broker closed the connection (does the listener require TLS? see --kafka-tls)", Err: err}, false
	}
	return err, false
}

// closedFor is how long every broker must keep closing the connection
// before Preflight takes it for a listener that speaks another protocol
// rather than a broker still starting or a proxy without a backend.
const closedFor = 3 * time.Second

// Preflight connects to the bootstrap brokers and asks one of them for
// metadata. It returns nil once one answers, a *BrokerError at once when
// a broker refuses the credentials or the TLS handshake (or, after a few
// seconds, keeps closing the connection: another protocol), and otherwise
// retries, logging why, until ctx ends, when it returns an
// *UnreachableError that wraps ctx's error. Every command calls it before
// anything else talks to Kafka, so that a misconfiguration fails the
// command in seconds instead of a retry loop.
func Preflight(ctx context.Context, o Options) error {
	cfg, err := o.SaramaConfig()
	if err != nil {
		return err
	}
	if len(o.Brokers) == 0 {
		return errors.New("kafka: no brokers")
	}
	if strings.EqualFold(o.Security.SASLMechanism, SASLPlain) && !o.Security.TLS {
		slog.Warn("SASL PLAIN without --kafka-tls sends the password in clear text", "brokers", o.Brokers)
	}
	cfg.Net.ReadTimeout = 10 * time.Second
	cfg.Net.WriteTimeout = 10 * time.Second
	retry := backoff.Retry{Policy: backoff.Policy{Min: 250 * time.Millisecond, Max: 2 * time.Second}}
	var closedSince time.Time
	for {
		var errs []error
		allClosed := true
		for _, addr := range o.Brokers {
			err := probeBrokerCtx(ctx, addr, cfg)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				// The broker accepted the connection but did not answer
				// before ctx ended.
				errs = append(errs, fmt.Errorf("kafka %s: no answer (is it a Kafka listener?)", addr))
				return &UnreachableError{Brokers: o.Brokers, Err: errors.Join(errs...), ctxErr: ctx.Err()}
			}
			xerr, fatal := o.Explain(addr, err)
			if fatal {
				return xerr
			}
			var be *BrokerError
			if !errors.As(xerr, &be) {
				allClosed = false
				xerr = fmt.Errorf("kafka %s: %w", addr, err)
			}
			errs = append(errs, xerr)
		}
		joined := errors.Join(errs...)
		switch {
		case !allClosed:
			closedSince = time.Time{}
		case closedSince.IsZero():
			closedSince = time.Now()
		case time.Since(closedSince) >= closedFor:
			return joined
		}
		wait := retry.Fail()
		slog.Warn("kafka not reachable, retrying", "brokers", o.Brokers, "err", joined, "backoff", wait)
		select {
		case <-ctx.Done():
			return &UnreachableError{Brokers: o.Brokers, Err: joined, ctxErr: ctx.Err()}
		case <-time.After(wait):
		}
	}
}

// probeBrokerCtx is probeBroker that returns when ctx ends; the probe
// itself ends within the configured network timeouts.
func probeBrokerCtx(ctx context.Context, addr string, cfg *sarama.Config) error {
	done := make(chan error, 1)
	go func() { done <- probeBroker(addr, cfg) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probeBroker opens one connection to addr with cfg (TLS, SASL) and asks
// for the cluster's metadata.
func probeBroker(addr string, cfg *sarama.Config) error {
	b := sarama.NewBroker(addr)
	if err := b.Open(cfg); err != nil {
		return err
	}
	defer func() { _ = b.Close() }()
	_, err := b.GetMetadata(sarama.NewMetadataRequest(cfg.Version, nil))
	return err
}
