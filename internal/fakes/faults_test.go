package fakes_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/fakes"
)

// backend answers 200 "ok" and counts the requests that reached it.
type backend struct{ hits atomic.Int32 }

func (b *backend) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	b.hits.Add(1)
	io.WriteString(w, "ok")
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func do(t *testing.T, c *http.Client, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func TestFailNextThenPass(t *testing.T) {
	b := &backend{}
	f := fakes.NewFaults(b, fakes.WithErrorBody(fakes.GitHubError))
	f.FailNext(2, http.StatusServiceUnavailable)
	url := serve(t, f)

	for i := 0; i < 2; i++ {
		code, body, h := do(t, http.DefaultClient, http.MethodGet, url+"/repos/o/r/commits/main")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Contains(t, h.Get("Content-Type"), "application/json")
		var msg struct{ Message string }
		require.NoError(t, json.Unmarshal([]byte(body), &msg), "GitHub errors are JSON")
		assert.NotEmpty(t, msg.Message)
	}
	code, body, _ := do(t, http.DefaultClient, http.MethodGet, url+"/repos/o/r/commits/main")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)
	assert.EqualValues(t, 1, b.hits.Load(), "failed requests never reach the handler")
	assert.Equal(t, fakes.Counts{Seen: 3, Failed: 2, Passed: 1}, f.Counts())
	assert.Zero(t, f.Pending())
	reqs := f.Requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, fakes.Request{Method: "GET", Path: "/repos/o/r/commits/main", Kind: fakes.Failed, Status: 503}, reqs[0])
	assert.Equal(t, fakes.Request{Method: "GET", Path: "/repos/o/r/commits/main", Kind: fakes.Passed, Status: 200}, reqs[2])
}

func TestMatcherTargetsMethodAndPathPrefix(t *testing.T) {
	b := &backend{}
	f := fakes.NewFaults(b, fakes.WithErrorBody(fakes.CatalogError), fakes.WithRetryAfter(7*time.Second))
	images := f.On(http.MethodPost, "/api/containers/v1/images")
	images.FailNext(1, http.StatusTooManyRequests)
	url := serve(t, f)

	code, _, _ := do(t, http.DefaultClient, http.MethodGet, url+"/api/containers/v1/images/id/x")
	assert.Equal(t, http.StatusOK, code, "another method passes")
	code, _, _ = do(t, http.DefaultClient, http.MethodPost, url+"/api/containers/v1/projects")
	assert.Equal(t, http.StatusOK, code, "another path passes")
	code, body, h := do(t, http.DefaultClient, http.MethodPost, url+"/api/containers/v1/images")
	assert.Equal(t, http.StatusTooManyRequests, code)
	assert.Equal(t, "7", h.Get("Retry-After"))
	var problem struct{ Status int }
	require.NoError(t, json.Unmarshal([]byte(body), &problem))
	assert.Equal(t, 429, problem.Status, "catalog errors are problem documents")
	code, _, _ = do(t, http.DefaultClient, http.MethodPost, url+"/api/containers/v1/images")
	assert.Equal(t, http.StatusOK, code, "used up")

	assert.Equal(t, fakes.Counts{Seen: 2, Failed: 1, Passed: 1}, images.Counts())
	assert.Equal(t, fakes.Counts{Seen: 4, Failed: 1, Passed: 3}, f.Counts())
	assert.Equal(t, 1, f.On("GET", "").Counts().Seen)
}

func TestRulesApplyInOrderAndAlwaysLastsUntilHeal(t *testing.T) {
	b := &backend{}
	f := fakes.NewFaults(b)
	f.On("", "/a").FailNext(1, http.StatusBadGateway).Always(http.StatusUnauthorized)
	url := serve(t, f)

	var got []int
	for i := 0; i < 4; i++ {
		code, _, _ := do(t, http.DefaultClient, http.MethodGet, url+"/a")
		got = append(got, code)
	}
	assert.Equal(t, []int{502, 401, 401, 401}, got)
	code, body, _ := do(t, http.DefaultClient, http.MethodGet, url+"/b")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)
	_, body, _ = do(t, http.DefaultClient, http.MethodGet, url+"/a")
	assert.Equal(t, "401 Unauthorized\n", body, "the default body is plain text")

	f.Heal()
	code, _, _ = do(t, http.DefaultClient, http.MethodGet, url+"/a")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, 5, f.On("", "/a").Counts().Failed)
	assert.EqualValues(t, 2, b.hits.Load())
}

func TestStallReturnsWhenTheClientGivesUp(t *testing.T) {
	b := &backend{}
	f := fakes.NewFaults(b)
	f.StallNext(1, time.Minute)
	url := serve(t, f) // Close at cleanup would block for the minute if the stall held on

	start := time.Now()
	_, err := (&http.Client{Timeout: 200 * time.Millisecond}).Get(url + "/slow")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second)
	require.Eventually(t, func() bool { return f.Counts().Abandoned == 1 }, 10*time.Second, 10*time.Millisecond,
		"the held request returns once its client is gone")
	assert.Zero(t, b.hits.Load(), "an abandoned request never reaches the handler")
	assert.Equal(t, fakes.Counts{Seen: 1, Stalled: 1, Abandoned: 1}, f.Counts())

	code, _, _ := do(t, http.DefaultClient, http.MethodGet, url+"/slow")
	assert.Equal(t, http.StatusOK, code, "the next request is not held")

	// A caller's context works the same way as a client timeout.
	f.StallNext(1, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/slow", nil)
	_, err = http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return f.Counts().Abandoned == 2 }, 10*time.Second, 10*time.Millisecond)
}

func TestStallThenAnswer(t *testing.T) {
	b := &backend{}
	f := fakes.NewFaults(b)
	f.StallNext(1, 150*time.Millisecond)
	url := serve(t, f)
	start := time.Now()
	code, body, _ := do(t, http.DefaultClient, http.MethodGet, url+"/x")
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)
	assert.Equal(t, fakes.Counts{Seen: 1, Stalled: 1, Passed: 1}, f.Counts())

	// Heal lets a held request through at once.
	f.StallNext(1, time.Hour)
	done := make(chan int)
	go func() {
		resp, err := http.Get(url + "/x")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return f.Counts().Seen == 2 }, 10*time.Second, 5*time.Millisecond)
	f.Heal()
	select {
	case code := <-done:
		assert.Equal(t, http.StatusOK, code)
	case <-time.After(10 * time.Second):
		t.Fatal("Heal did not release the held request")
	}
}

func TestServeThenFailKeepsTheSideEffect(t *testing.T) {
	b := &backend{}
	f := fakes.NewFaults(b, fakes.WithErrorBody(fakes.RegistryError))
	f.On(http.MethodPut, "/v2/").ServeThenFailNext(1, http.StatusGatewayTimeout)
	url := serve(t, f)
	code, body, _ := do(t, http.DefaultClient, http.MethodPut, url+"/v2/r/manifests/t")
	assert.Equal(t, http.StatusGatewayTimeout, code)
	assert.JSONEq(t, `{"errors":[{"code":"UNAVAILABLE","message":"Gateway Timeout","detail":null}]}`, body)
	assert.EqualValues(t, 1, b.hits.Load(), "the handler ran: the write happened, its answer was lost")
	assert.Equal(t, fakes.Counts{Seen: 1, Failed: 1, Passed: 1}, f.Counts())
}

func TestRespondNextWritesACustomAnswer(t *testing.T) {
	f := fakes.NewFaults(&backend{})
	f.RespondNext(1, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.WriteHeader(http.StatusForbidden)
	})
	url := serve(t, f)
	code, _, h := do(t, http.DefaultClient, http.MethodGet, url+"/x")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "0", h.Get("X-RateLimit-Remaining"))
	assert.Equal(t, fakes.Counts{Seen: 1, Responded: 1}, f.Counts())
	assert.Equal(t, 403, f.Requests()[0].Status)
}

func TestFaultsAreCountedExactlyUnderConcurrency(t *testing.T) {
	b := &backend{}
	f := fakes.NewFaults(b)
	f.FailNext(10, http.StatusServiceUnavailable)
	url := serve(t, f)
	var wg sync.WaitGroup
	var failed, passed atomic.Int32
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url + "/x")
			if err != nil {
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				failed.Add(1)
			} else {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 10, failed.Load())
	assert.EqualValues(t, 30, passed.Load())
	assert.EqualValues(t, 30, b.hits.Load())
	assert.Equal(t, fakes.Counts{Seen: 40, Failed: 10, Passed: 30}, f.Counts())
}
