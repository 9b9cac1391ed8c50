// Package fakes holds test doubles of the external HTTP services the release talks to,
// for tests in any package: GitHub (the REST API as go-github v57 calls it), the
// certification catalog API, and Faults, a middleware that makes any handler (these
// fakes, or a proxy to a real registry) fail, stall or refuse for a while. The fakes
// keep the state a test needs to count side effects, read through methods.
//
// The package uses the standard library only, so any test may import it.
package fakes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrorBody writes an injected error answer: headers, status and a body shaped like the
// service behind the middleware would send.
type ErrorBody func(w http.ResponseWriter, r *http.Request, status int)

// TextError answers with the status text, as a plain proxy or load balancer does.
func TextError(w http.ResponseWriter, _ *http.Request, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s\n", status, http.StatusText(status))
}

// GitHubError answers like GitHub's REST API: {"message": ..., "documentation_url": ...}.
func GitHubError(w http.ResponseWriter, _ *http.Request, status int) {
	msg := http.StatusText(status)
	switch status {
	case http.StatusUnauthorized:
		msg = "Bad credentials"
	case http.StatusUnprocessableEntity:
		msg = "Validation Failed"
	case http.StatusInternalServerError, http.StatusBadGateway:
		msg = "Server Error"
	}
	writeJSON(w, status, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

// CatalogError answers like the catalog API: a problem document with detail and status.
func CatalogError(w http.ResponseWriter, _ *http.Request, status int) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"detail": fmt.Sprintf("injected %d", status), "status": status, "title": http.StatusText(status), "type": "about:blank"})
}

// RegistryError answers like an OCI distribution registry: {"errors": [{"code": ...}]},
// with a Basic challenge on 401.
func RegistryError(w http.ResponseWriter, _ *http.Request, status int) {
	code := "UNKNOWN"
	switch {
	case status == http.StatusUnauthorized:
		code = "UNAUTHORIZED"
		w.Header().Set("WWW-Authenticate", `Basic realm="fakes"`)
	case status == http.StatusForbidden:
		code = "DENIED"
	case status == http.StatusNotFound:
		code = "NAME_UNKNOWN"
	case status == http.StatusTooManyRequests:
		code = "TOOMANYREQUESTS"
	case status >= 500:
		code = "UNAVAILABLE"
	}
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"code": code, "message": http.StatusText(status), "detail": nil}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// FaultOption configures Faults.
type FaultOption func(*Faults)

// WithErrorBody sets how injected errors are written (default TextError).
func WithErrorBody(b ErrorBody) FaultOption { return func(f *Faults) { f.body = b } }

// WithRetryAfter sends Retry-After (whole seconds) with injected 429 answers.
func WithRetryAfter(d time.Duration) FaultOption {
	return func(f *Faults) { f.retryAfter = strconv.Itoa(int(d / time.Second)) }
}

// match selects requests by method and path prefix; an empty field matches anything.
type match struct {
	Method     string
	PathPrefix string
}

func (m match) matches(method, path string) bool {
	return (m.Method == "" || strings.EqualFold(m.Method, method)) && strings.HasPrefix(path, m.PathPrefix)
}

// Kind is what the middleware did with a request.
type Kind string

// Kinds of handling.
const (
	Passed         Kind = "passed"           // handed to the next handler untouched
	Failed         Kind = "failed"           // answered with an injected status (FailNext, Always)
	Stalled        Kind = "stalled"          // held, then handed on (or abandoned, see Request)
	Responded      Kind = "responded"        // answered by a RespondNext handler
	ServedThenFail Kind = "served-then-fail" // handed on, its answer replaced by an error
)

// Request is one request the middleware saw.
type Request struct {
	Method string
	Path   string
	Kind   Kind
	// Status is the status the client got (0 when it got none: an abandoned stall).
	Status int
	// Abandoned is set when the client gave up during a stall; the next handler never saw it.
	Abandoned bool
}

// Counts sums up requests.
type Counts struct {
	Seen      int // all requests
	Passed    int // reached the next handler, by any path (including stalls that ended and ServedThenFail)
	Failed    int // the client got an injected error status (FailNext, Always, ServeThenFailNext)
	Stalled   int // held by StallNext
	Abandoned int // held, and the client gave up before the stall ended
	Responded int // answered by a RespondNext handler
}

type rule struct {
	match   match
	left    int // -1: forever
	kind    Kind
	status  int
	delay   time.Duration
	respond http.HandlerFunc
}

// Faults is an http.Handler middleware that injects failures in front of another
// handler. Rules apply in the order they were added: a request takes the first rule
// that matches it and has uses left, and uses one up; requests no rule takes pass
// through. Always never runs out, so a rule added after it for the same requests only
// applies after Heal. All methods are safe for concurrent use.
//
// The promoted methods of the embedded Scope (FailNext, StallNext, Always, ...) target
// every request; On targets some.
type Faults struct {
	Scope
	next       http.Handler
	body       ErrorBody
	retryAfter string

	mu     sync.Mutex
	rules  []*rule
	log    []Request
	healed chan struct{}
}

// NewFaults puts the middleware in front of next.
func NewFaults(next http.Handler, opts ...FaultOption) *Faults {
	f := &Faults{next: next, body: TextError, healed: make(chan struct{})}
	f.Scope = Scope{f: f}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Scope is the part of the traffic that rules added through it apply to.
type Scope struct {
	f *Faults
	m match
}

// On returns the scope of requests with that method (empty: any) whose path starts with prefix.
func (f *Faults) On(method, pathPrefix string) Scope {
	return Scope{f: f, m: match{Method: method, PathPrefix: pathPrefix}}
}

func (s Scope) add(r *rule) Scope {
	r.match = s.m
	s.f.mu.Lock()
	s.f.rules = append(s.f.rules, r)
	s.f.mu.Unlock()
	return s
}

// FailNext answers the next n requests of the scope with status and an error body.
func (s Scope) FailNext(n, status int) Scope {
	if n <= 0 {
		return s
	}
	return s.add(&rule{left: n, kind: Failed, status: status})
}

// StallNext holds the next n requests of the scope for d, then hands them on. A request
// whose client gives up (its context ends) returns at once without reaching the next
// handler, as a request lost in a network partition would.
func (s Scope) StallNext(n int, d time.Duration) Scope {
	if n <= 0 {
		return s
	}
	return s.add(&rule{left: n, kind: Stalled, delay: d})
}

// Always answers every request of the scope with status until Heal, such as 401 for a
// revoked credential.
func (s Scope) Always(status int) Scope {
	return s.add(&rule{left: -1, kind: Failed, status: status})
}

// RespondNext answers the next n requests of the scope with h, for answers an error
// status alone cannot describe (rate-limit headers, malformed bodies).
func (s Scope) RespondNext(n int, h http.HandlerFunc) Scope {
	if n <= 0 {
		return s
	}
	return s.add(&rule{left: n, kind: Responded, respond: h})
}

// ServeThenFailNext hands the next n requests of the scope on, so their side effects
// happen, then replaces the answer with status: a gateway that timed out after the
// backend committed. Retries of such requests must not repeat the side effect.
func (s Scope) ServeThenFailNext(n, status int) Scope {
	if n <= 0 {
		return s
	}
	return s.add(&rule{left: n, kind: ServedThenFail, status: status})
}

// Counts sums up the requests of the scope seen so far.
func (s Scope) Counts() Counts {
	var c Counts
	for _, r := range s.f.Requests() {
		if !s.m.matches(r.Method, r.Path) {
			continue
		}
		c.Seen++
		if (r.Kind == Passed || r.Kind == Stalled || r.Kind == ServedThenFail) && !r.Abandoned {
			c.Passed++
		}
		switch r.Kind {
		case Failed, ServedThenFail:
			c.Failed++
		case Stalled:
			c.Stalled++
			if r.Abandoned {
				c.Abandoned++
			}
		case Responded:
			c.Responded++
		}
	}
	return c
}

// Requests returns every request seen, in the order they arrived.
func (f *Faults) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.log...)
}

// Pending reports how many injected faults are still queued (Always counts as one).
func (f *Faults) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rules)
}

// Heal drops every rule and lets requests held by StallNext through at once.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
	close(f.healed)
	f.healed = make(chan struct{})
}

// take finds the rule for a request and logs it; it returns the log index.
func (f *Faults) take(r *http.Request) (rule, int, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := rule{kind: Passed}
	for i, ru := range f.rules {
		if !ru.match.matches(r.Method, r.URL.Path) {
			continue
		}
		got = *ru
		if ru.left > 0 {
			ru.left--
			if ru.left == 0 {
				f.rules = append(f.rules[:i:i], f.rules[i+1:]...)
			}
		}
		break
	}
	f.log = append(f.log, Request{Method: r.Method, Path: r.URL.Path, Kind: got.kind})
	return got, len(f.log) - 1, f.healed
}

func (f *Faults) settle(i, status int, abandoned bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log[i].Status, f.log[i].Abandoned = status, abandoned
}

func (f *Faults) fail(w http.ResponseWriter, r *http.Request, status int) {
	if status == http.StatusTooManyRequests && f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	f.body(w, r, status)
}

// ServeHTTP applies the first matching rule.
func (f *Faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ru, i, healed := f.take(r)
	switch ru.kind {
	case Failed:
		f.fail(w, r, ru.status)
		f.settle(i, ru.status, false)
		return
	case Responded:
		sw := &statusWriter{ResponseWriter: w}
		ru.respond(sw, r)
		f.settle(i, sw.code(), false)
		return
	case ServedThenFail:
		f.next.ServeHTTP(discardWriter{h: http.Header{}}, r)
		f.fail(w, r, ru.status)
		f.settle(i, ru.status, false)
		return
	case Stalled:
		t := time.NewTimer(ru.delay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			f.settle(i, 0, true)
			return
		case <-t.C:
		case <-healed:
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	f.next.ServeHTTP(sw, r)
	f.settle(i, sw.code(), false)
}

// statusWriter remembers the status of an answer; Unwrap lets http.ResponseController
// (and so httputil.ReverseProxy) reach the Flusher underneath.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// discardWriter takes the answer of a request whose answer is lost.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
