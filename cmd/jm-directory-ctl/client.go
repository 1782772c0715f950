package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Response size limits: /health is tiny; /status lists up to max_peers nicks.
const (
	maxHealthBody = 64 << 10
	maxStatusBody = 64 << 20
)

// errUnauthorized: /status answered 401 or 403.
var errUnauthorized = errors.New("unauthorized")

// client talks to one server's ops listener.
type client struct {
	base    string // "http://host:port", or https off loopback
	token   string // bearer token for /status; "" = none
	timeout time.Duration
	http    *http.Client
	log     *logger
}

// newClient builds a client for the options' host and port. An unspecified listen
// address (0.0.0.0, ::), as the server's own health_check_host may be, is reached
// through loopback (over HTTPS, as the server serves it there: see resolveTLS).
func newClient(o *options, lg *logger) *client {
	host := o.host
	switch host {
	case "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if host != o.host {
		lg.debugf("host %s is a wildcard listen address: connecting to %s", o.host, host)
	}
	tr := &http.Transport{
		Proxy:              nil, // never through $HTTP_PROXY: this is a local check
		DialContext:        (&net.Dialer{Timeout: o.timeout, KeepAlive: -1}).DialContext,
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	scheme := "http"
	if o.https {
		scheme = "https"
		tr.TLSClientConfig = o.trust.clientConfig()
		tr.TLSHandshakeTimeout = o.timeout
		lg.debugf("TLS: %s", o.trust.describe())
	}
	return &client{
		base:    scheme + "://" + net.JoinHostPort(host, o.port),
		timeout: o.timeout,
		log:     lg,
		http: &http.Client{
			Transport: tr,
			Timeout:   o.timeout,
			// A redirect is not what either endpoint answers: report it, follow nothing.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// url is the full address of an endpoint.
func (c *client) url(path string) string { return c.base + path }

// reply is one HTTP answer.
type reply struct {
	code   int
	status string // "200 OK"
	body   []byte
}

// get requests path and reads at most limit bytes of the answer. A transport failure is
// an *unreachableError.
func (c *client) get(ctx context.Context, path string, auth bool, limit int64) (reply, error) {
	u := c.url(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return reply{}, fmt.Errorf("%s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", prog)
	if auth && c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	c.log.debugf("GET %s", u)
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.log.debugf("GET %s failed after %v: %v", u, time.Since(start).Round(time.Millisecond), err)
		if pe := (*pinError)(nil); errors.As(err, &pe) {
			return reply{}, fmt.Errorf("%s: %w", u, pe)
		}
		return reply{}, &unreachableError{url: u, err: err, timeout: c.timeout}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	c.log.debugf("GET %s: HTTP %s, %d bytes in %v", u, resp.Status, len(body), time.Since(start).Round(time.Millisecond))
	if err != nil {
		return reply{}, &unreachableError{url: u, err: err, timeout: c.timeout}
	}
	if int64(len(body)) > limit {
		return reply{}, fmt.Errorf("%s: response larger than %d bytes", u, limit)
	}
	if resp.StatusCode == http.StatusBadRequest && bytes.Contains(body, []byte("HTTP request to an HTTPS server")) {
		return reply{}, fmt.Errorf("%s: the ops listener serves HTTPS (its HEALTH_CHECK_HOST is not loopback): pass --tls-fingerprint or --cacert, or --host with that address", u)
	}
	return reply{code: resp.StatusCode, status: resp.Status, body: body}, nil
}

// unreachableError is a request that got no HTTP answer.
type unreachableError struct {
	url     string
	err     error
	timeout time.Duration
}

func (e *unreachableError) Error() string {
	msg := "cannot reach " + e.url + ": " + shortError(e.err, e.timeout)
	if h := tlsHint(e.err); h != "" {
		msg += "; " + h
	}
	return msg
}

func (e *unreachableError) Unwrap() error { return e.err }

// shortError strips the request and socket wrappers from a transport error, leaving
// e.g. "connection refused", "timed out after 5s" or "lookup x: no such host".
func shortError(err error, timeout time.Duration) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf("timed out after %v", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) && se.Err != nil {
		err = se.Err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed without an answer"
	}
	return err.Error()
}

// health is the server's answer to /health.
type health struct {
	Healthy    bool
	Status     string // "healthy", "unhealthy", …
	Reason     string // why not healthy, when given
	HTTPStatus string
	Raw        []byte // the JSON body; nil when the body was not JSON
}

// describe is "healthy", "unhealthy" or "unhealthy (<reason>)".
func (h health) describe() string {
	if h.Reason != "" {
		return h.Status + " (" + h.Reason + ")"
	}
	return h.Status
}

// Health asks /health. 200 and 503 are answers (a 503 whose body is not JSON, as
// joinmarket-ng sends before its server is attached, is "unhealthy"); anything else is
// an error.
func (c *client) Health(ctx context.Context) (health, error) {
	r, err := c.get(ctx, "/health", false, maxHealthBody)
	if err != nil {
		return health{}, err
	}
	if r.code != http.StatusOK && r.code != http.StatusServiceUnavailable {
		return health{}, fmt.Errorf("%s: unexpected HTTP %s", c.url("/health"), r.status)
	}
	var body struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Status == "" {
		if r.code == http.StatusOK {
			if err == nil {
				err = errors.New(`no "status"`)
			}
			return health{}, fmt.Errorf("%s: invalid JSON: %v", c.url("/health"), err)
		}
		return health{Status: "unhealthy", Reason: "HTTP " + r.status, HTTPStatus: r.status}, nil
	}
	return health{
		Healthy:    r.code == http.StatusOK && body.Status == "healthy",
		Status:     body.Status,
		Reason:     body.Reason,
		HTTPStatus: r.status,
		Raw:        r.body,
	}, nil
}

// Status asks /status with the bearer token and decodes the answer; it returns the body
// as received too.
func (c *client) Status(ctx context.Context) ([]byte, *statusDoc, error) {
	r, err := c.get(ctx, "/status", true, maxStatusBody)
	if err != nil {
		return nil, nil, err
	}
	switch r.code {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, nil, fmt.Errorf("%s: HTTP %s: %w", c.url("/status"), r.status, errUnauthorized)
	default:
		return nil, nil, fmt.Errorf("%s: unexpected HTTP %s", c.url("/status"), r.status)
	}
	st, err := decodeStatus(r.body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", c.url("/status"), err)
	}
	return r.body, st, nil
}

// writeJSON prints a JSON body indented by two spaces (as joinmarket-ng does), keys and
// values exactly as the server sent them.
func writeJSON(w io.Writer, raw []byte) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		buf.Reset()
		buf.Write(bytes.TrimSpace(raw))
	}
	buf.WriteByte('\n')
	_, _ = w.Write(buf.Bytes())
}
