package hostapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	httpClientUsage = "http get URL [count=1] [expect=200] [keepalive=yes]"
	httpServerUsage = "http [[ADDR]:PORT]"
)

const (
	// httpRequestTimeout bounds one request, body included, so that a
	// silent server fails the client instead of hanging the function.
	httpRequestTimeout = 30 * time.Second
	// httpShutdownGrace is how long a stopping server lets requests in
	// flight finish before it closes their connections.
	httpShutdownGrace = 5 * time.Second
	// httpMaxBytes caps /bytes/N.
	httpMaxBytes = 1 << 30
)

// httpClient sends GET requests.
type httpClient struct {
	url       string
	count     int
	expect    int
	keepalive bool

	mu    sync.Mutex
	stats HTTPClientStats
	total time.Duration
}

var _ App = (*httpClient)(nil)

// HTTPClientStats is what the http client reports in Stats.
type HTTPClientStats struct {
	URL        string  `json:"url"`
	Requests   int     `json:"requests"`
	OK         int     `json:"ok"` // responses with the expected status
	Bytes      int64   `json:"bytes"`
	LastStatus int     `json:"last_status,omitempty"`
	AvgMs      float64 `json:"avg_ms"`
}

func parseHTTPClient(s *spec) (App, error) {
	if err := s.wantArgs(2, 2, []string{"get", "URL"}, httpClientUsage); err != nil {
		return nil, err
	}
	if err := s.checkOptions("count", "expect", "keepalive"); err != nil {
		return nil, err
	}
	keepalive := true
	for _, o := range s.opts {
		if o.key == "keepalive" {
			switch o.val {
			case "yes", "true":
			case "no", "false":
				keepalive = false
			default:
				return nil, s.badOption(o, "want yes or no")
			}
		}
	}
	if !strings.EqualFold(s.args[0], "get") {
		return nil, s.badArg("method", s.args[0], "want get")
	}
	u, err := url.Parse(s.args[1])
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, s.badArg("URL", s.args[1], "want http://IP[:PORT]/PATH")
	}
	if _, err := netip.ParseAddr(u.Hostname()); err != nil {
		return nil, s.badArg("URL", s.args[1], "want an IP address as host, such as http://192.0.2.2/ or http://[2001:db8::2]:8080/ (there is no DNS)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, s.badArg("URL", s.args[1], "want a port from 1 to 65535")
		}
	}
	count, err := s.intOpt("count", 1, 1, 1<<31-1)
	if err != nil {
		return nil, err
	}
	expect, err := s.intOpt("expect", 200, 100, 599)
	if err != nil {
		return nil, err
	}
	c := &httpClient{url: u.String(), count: int(count), expect: int(expect), keepalive: keepalive}
	c.stats.URL = c.url
	return c, nil
}

// Name implements App.
func (c *httpClient) Name() string { return "http" }

// Stats implements App; it returns an HTTPClientStats.
func (c *httpClient) Stats() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Run implements App: it sends count requests, stopping at the first
// failure.
func (c *httpClient) Run(ctx context.Context, env *Env) error {
	out := newOutput(env)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, fmt.Errorf("dial %q: not an IP address and port (there is no DNS)", addr)
			}
			return env.Net.DialTCP(ctx, ap)
		},
		// Proxy settings in the environment belong to the machine, not to
		// this stack.
		Proxy: nil,
		// Count the bytes the server sent, not what they inflate to.
		DisableCompression: true,
		// keepalive=no: a new connection per request (a load balancer
		// then spreads them).
		DisableKeepAlives: !c.keepalive,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   httpRequestTimeout,
		// A redirect is a result to report, and following it could lead
		// to a hostname this stack cannot resolve.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for i := range c.count {
		if err := c.get(ctx, client, out); err != nil {
			if c.count > 1 {
				return fmt.Errorf("http get %s: request %d of %d: %w", c.url, i+1, c.count, err)
			}
			return fmt.Errorf("http get %s: %w", c.url, err)
		}
	}
	return nil
}

// get sends one request and checks its status.
func (c *httpClient) get(ctx context.Context, client *http.Client, out *output) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is already in our message
		}
		c.mu.Lock()
		c.stats.Requests++
		c.mu.Unlock()
		return err
	}
	// Keep the start of a short text body to show it: "who answered".
	var head bytes.Buffer
	n, err := io.Copy(io.MultiWriter(io.Discard, &limitedBuffer{b: &head, max: 120}), resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	c.mu.Lock()
	c.stats.Requests++
	c.stats.Bytes += n
	c.stats.LastStatus = resp.StatusCode
	c.total += elapsed
	c.stats.AvgMs = round3(float64(c.total) / float64(c.stats.Requests) / float64(time.Millisecond))
	if err == nil && resp.StatusCode == c.expect {
		c.stats.OK++
	}
	c.mu.Unlock()
	line := fmt.Sprintf("GET %s -> %s, %d bytes in %s ms", c.url, resp.Status, n, fmtRTT(elapsed))
	if first, _, _ := strings.Cut(head.String(), "\n"); strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") && first != "" && utf8.ValidString(first) {
		line += ": " + first
	}
	out.printf("%s", line)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != c.expect {
		return fmt.Errorf("got %s, expected %d", resp.Status, c.expect)
	}
	return nil
}

// httpServer serves a greeting, byte streams and a health check.
type httpServer struct {
	addr  netip.AddrPort
	label string
	bound *boundAddr

	mu    sync.Mutex
	stats HTTPServerStats
}

var _ App = (*httpServer)(nil)

// HTTPServerStats is what the http server reports in Stats.
type HTTPServerStats struct {
	Listen   string        `json:"listen"`
	Requests int64         `json:"requests"`
	Bytes    int64         `json:"bytes"`     // response body bytes written
	ByStatus map[int]int64 `json:"by_status"` // requests per response status
}

func parseHTTPServer(s *spec) (App, error) {
	if err := s.wantArgs(0, 1, nil, httpServerUsage); err != nil {
		return nil, err
	}
	if err := s.checkOptions(); err != nil {
		return nil, err
	}
	addr := netip.AddrPortFrom(netip.Addr{}, 80)
	if len(s.args) == 1 {
		var err error
		if addr, err = s.listenAddr(s.args[0]); err != nil {
			return nil, err
		}
	}
	h := &httpServer{addr: addr, label: addrLabel(addr), bound: newBoundAddr()}
	h.stats = HTTPServerStats{Listen: h.label, ByStatus: map[int]int64{}}
	return h, nil
}

// Name implements App.
func (h *httpServer) Name() string { return "http" }

// Stats implements App; it returns an HTTPServerStats.
func (h *httpServer) Stats() any {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stats
	st.ByStatus = maps.Clone(h.stats.ByStatus)
	return st
}

// Run implements App: it serves until ctx ends, then shuts down
// gracefully.
func (h *httpServer) Run(ctx context.Context, env *Env) error {
	log := logger(env, "http")
	ln, err := env.Net.ListenTCP(h.addr)
	if err != nil {
		return fmt.Errorf("http server %s: listen: %w", h.label, err)
	}
	log.Info("listening", "proto", "tcp", "addr", ln.Addr().String())
	h.mu.Lock()
	h.label = addrLabel(boundPort(h.addr, ln.Addr()))
	h.stats.Listen = h.label
	h.mu.Unlock()
	h.bound.set(ln.Addr())

	ln = &onceCloseListener{Listener: ln}
	var fresh connSet
	srv := &http.Server{
		Handler:           h.handler(env.Host),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         fresh.track,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("http server %s: %w", h.Stats().(HTTPServerStats).Listen, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownGrace)
	defer cancel()
	// Shutdown leaves connections that have not sent a whole request for
	// 5 s in case one is about to; a stopping function has no use for
	// them. Closing the listener first means no new one can join them.
	ln.Close()
	fresh.closeAll()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running after the grace period; closing them", "grace", httpShutdownGrace)
		srv.Close()
	}
	<-served
	st := h.Stats().(HTTPServerStats)
	newOutput(env).printf("http server %s: %d %s, %d bytes", st.Listen, st.Requests, plural(st.Requests, "request", "requests"), st.Bytes)
	return nil
}

// onceCloseListener lets Run close the listener before Shutdown does,
// without Shutdown reporting the second close as a failure.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

// Close implements net.Listener.
func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// connSet tracks the server's connections that have not yet sent a
// request.
type connSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// track is an http.Server ConnState hook.
func (s *connSet) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	if state == http.StateNew {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

// closeAll closes the connections that are still waiting for a request.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// handler returns the routes, wrapped to count requests.
func (h *httpServer) handler(host string) http.Handler {
	mux := http.NewServeMux()
	who := "nfpipe host"
	if host != "" {
		who += " " + host
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s: you are %s, you asked for %s\n", who, r.RemoteAddr, r.URL.RequestURI())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /bytes/{n}", serveBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		mux.ServeHTTP(cw, r)
		if cw.status == 0 {
			cw.status = http.StatusOK
		}
		h.mu.Lock()
		h.stats.Requests++
		h.stats.Bytes += cw.bytes
		h.stats.ByStatus[cw.status]++
		h.mu.Unlock()
	})
}

// serveBytes answers /bytes/N with N bytes of a repeating pattern.
func serveBytes(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "want /bytes/N with N a whole number of bytes", http.StatusBadRequest)
		return
	}
	if n > httpMaxBytes {
		http.Error(w, fmt.Sprintf("at most %d bytes", httpMaxBytes), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return // the client left, or this is a HEAD request
		}
		n -= k
	}
}

// countingWriter records the status and body size of a response.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader implements http.ResponseWriter.
func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// plural picks the singular or the plural form for n.
func plural[N int | int64 | uint64](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
