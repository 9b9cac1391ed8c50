package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"dgpu-release/internal/registry"
)

// The embedded default serves its own registry (registry.NewServer: go-containerregistry's
// registry with our disk blob handler and upload sessions on disk, plus a manifest journal), and the release's
// publish step there copies inside it. This part measures the same copy, and the blob
// requests it is made of, against that registry.

func init() {
	registerChild("push", childPush)
}

type pushArg struct {
	Specs    []layerSpec
	Embedded bool   // push into a registry.NewServer started in this child, with its state in Dir
	Dir      string // embedded: state folder
	Host     string // else: the registry to push to
	Want     string // the digest the image must have
}

type pushResult struct {
	Took   time.Duration
	Digest string
}

// childPush pushes the benchmark image with our client, into a registry started in the
// child (embedded) or an outside one: the child's memory is then client and embedded
// registry together, or the client alone.
func childPush(ctx context.Context, raw json.RawMessage) (any, error) {
	var a pushArg
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	img, err := assembleBench(a.Specs)
	if err != nil {
		return nil, err
	}
	host := a.Host
	if a.Embedded {
		h, stop, err := serveEmbedded(a.Dir)
		if err != nil {
			return nil, err
		}
		defer stop()
		host = h
	}
	t0 := time.Now()
	d, err := registry.NewClient().Push(ctx, img, host+"/"+benchRepo+":"+benchTag)
	if err != nil {
		return nil, err
	}
	res := pushResult{Took: time.Since(t0), Digest: d}
	if d != a.Want {
		return res, fmt.Errorf("pushed digest %s, want %s", d, a.Want)
	}
	return res, nil
}

// serveEmbedded serves registry.NewServer(dir) on a free loopback port.
func serveEmbedded(dir string) (host string, stop func(), err error) {
	h, err := registry.NewServer(dir, nil)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// timeRequests times n requests of a method on a URL, reading and discarding the body.
func timeRequests(ctx context.Context, method, url string, n int) ([]time.Duration, error) {
	var out []time.Duration
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	defer client.CloseIdleConnections()
	for range n {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s %s: %s", method, url, resp.Status)
		}
		out = append(out, d)
	}
	return out, nil
}

func runEmbedded(ctx context.Context, e *env, img *benchImage) (string, error) {
	if img.image == nil {
		return "", errors.New("the benchmark image is not in this process")
	}
	client := registry.NewClient()
	host, stop, err := serveEmbedded(e.Path("embedded-registry"))
	if err != nil {
		return "", err
	}
	defer stop()
	e.Logf("publish: embedded registry at %s: pushing the image", host)
	t0 := time.Now()
	d, err := client.Push(ctx, img.image, host+"/"+img.Repo+":"+img.Tag)
	if err != nil {
		return "", fmt.Errorf("push to the embedded registry: %w", err)
	}
	pushTook := time.Since(t0)
	if d != img.Digest {
		return "", fmt.Errorf("the embedded registry got digest %s, want %s", d, img.Digest)
	}

	// Single blob requests on the largest layer, both registries, no proxy.
	type reqRow struct {
		what        string
		third, embd []time.Duration
	}
	var reqs []reqRow
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		n := 5
		if m == http.MethodGet {
			n = 3
		}
		e.Logf("publish: %s of the largest blob (%s), %d times on each registry", m, fmtMiB(img.LargestSize), n)
		third, err := timeRequests(ctx, m, "http://"+img.Host+"/v2/"+img.Repo+"/blobs/"+img.LargestBlob, n)
		if err != nil {
			return "", err
		}
		embd, err := timeRequests(ctx, m, "http://"+host+"/v2/"+img.Repo+"/blobs/"+img.LargestBlob, n)
		if err != nil {
			return "", err
		}
		reqs = append(reqs, reqRow{what: m + " blob", third: third, embd: embd})
	}

	// The publish copy inside the embedded registry, through a counting proxy.
	p, err := newCountingProxy(host)
	if err != nil {
		return "", err
	}
	defer p.Close()
	var copies []time.Duration
	var first traffic
	for i := 1; i <= publishRuns; i++ {
		repo := fmt.Sprintf("bench/ours-%d", i)
		e.Logf("publish: embedded registry, ours run %d/%d: %s → %s", i, publishRuns, img.Repo, repo)
		p.Take()
		t0 := time.Now()
		if _, err := client.Copy(ctx, p.Host+"/"+img.Repo+"@"+img.Digest, p.Host+"/"+repo, img.Tag); err != nil {
			return "", fmt.Errorf("copy inside the embedded registry: %w", err)
		}
		copies = append(copies, time.Since(t0))
		tr := p.Take()
		if i == 1 {
			first = tr
		}
		e.Logf("  ours in %s", fmtDur(copies[len(copies)-1]))
	}
	p.Take()
	t0 = time.Now()
	res, err := client.Copy(ctx, p.Host+"/"+img.Repo+"@"+img.Digest, p.Host+"/bench/ours-1", img.Tag)
	if err != nil {
		return "", err
	}
	againTook := time.Since(t0)
	again := p.Take()
	if !res.AlreadyPresent {
		return "", errors.New("our re-publish inside the embedded registry did not report AlreadyPresent")
	}

	// Memory of a push: the client alone (to a new docker-registry) against client and
	// embedded registry in one process (as in the worker).
	type pushRow struct {
		what string
		runs []childStats
		took []time.Duration
	}
	rows := []*pushRow{{what: "to docker-registry (the child is the client alone)"}, {what: "to registry.NewServer in the child (client + embedded registry, as in `worker --dev`)"}}
	for i := 1; i <= publishRuns; i++ {
		for k, r := range rows {
			arg := pushArg{Specs: img.Specs, Want: img.Digest}
			var reg *regInstance
			if k == 0 {
				reg, err = e.StartRegistry(ctx, fmt.Sprintf("registry-push-%d", i))
				if err != nil {
					return "", err
				}
				arg.Host = reg.Host
			} else {
				arg.Embedded, arg.Dir = true, e.Path(fmt.Sprintf("embedded-push-%d", i))
			}
			e.Logf("publish: push in a child process %s, run %d/%d", r.what, i, publishRuns)
			var out pushResult
			st, err := e.RunChild(ctx, "push", arg, &out)
			if reg != nil {
				reg.Stop(true)
			} else {
				os.RemoveAll(arg.Dir)
			}
			if err != nil {
				return "", err
			}
			r.runs = append(r.runs, st)
			r.took = append(r.took, out.Took)
			e.Logf("  pushed in %s, peak RSS %s (%s above its start)", fmtDur(out.Took), fmtMiB(st.HWM), fmtMiB(st.Growth()))
		}
	}
	base, err := e.Baseline(ctx)
	if err != nil {
		return "", err
	}

	var b strings.Builder
	b.WriteString("\n### The embedded registry (`registry.NewServer`, what `worker --dev` serves)\n\n")
	fmt.Fprintf(&b, "The embedded default's publish copies inside its own registry: go-containerregistry's registry with our disk blob handler, upload sessions streamed to files, and the manifest journal, served here in the bench process on loopback. "+
		"The image was pushed into it by our client in %s (%s), against %s into docker-registry above.\n\n", fmtDur(pushTook), rate(img.Compressed, pushTook), fmtDur(img.Push))
	fmt.Fprintf(&b, "Single requests on the largest blob (%s, `%s`), straight to each registry:\n\n", fmtMiB(img.LargestSize), short(img.LargestBlob))
	b.WriteString("| request | runs | docker-registry, median | embedded, median | embedded / docker-registry | embedded, every run |\n|---|---:|---:|---:|---:|---|\n")
	for _, r := range reqs {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", r.what, len(r.embd), fmtDur(median(r.third)), fmtDur(median(r.embd)), ratio(median(r.embd), median(r.third)), fmtDurs(r.embd))
	}
	b.WriteString("\nThe publish copy (`registry.Client.Copy`, bench/src → bench/ours-N) inside the embedded registry, through a counting proxy:\n\n")
	b.WriteString("| copy | runs | median | min | every run |\n|---|---:|---:|---:|---|\n")
	fmt.Fprintf(&b, "| first publish | %d | %s | %s | %s |\n", len(copies), fmtDur(median(copies)), fmtDur(minDur(copies)), fmtDurs(copies))
	fmt.Fprintf(&b, "| re-publish (AlreadyPresent) | 1 | %s | %s | %s |\n\n", fmtDur(againTook), fmtDur(againTook), fmtDur(againTook))
	b.WriteString(trafficTable([]string{"embedded, run 1", "embedded, re-publish"}, []traffic{first, again}))
	b.WriteString("\nPushing the whole image with our client from a child process (the bench binary re-run), to show where the memory goes:\n\n")
	b.WriteString("| push | runs | time, median | every run | RSS at start | peak RSS | growth (max) | Go heap peak (max) |\n|---|---:|---:|---|---:|---:|---:|---:|\n")
	for _, r := range rows {
		var start, peak, growth, heap []int64
		for _, s := range r.runs {
			start = append(start, s.Before.RSS)
			peak = append(peak, s.HWM)
			growth = append(growth, s.Growth())
			heap = append(heap, int64(s.HeapPeak))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", r.what, len(r.runs), fmtDur(median(r.took)), fmtDurs(r.took), fmtMiB(medianInt64(start)), fmtMiB(maxInt64(peak)), fmtMiB(maxInt64(growth)), fmtMiB(maxInt64(heap)))
	}
	b.WriteString("\n" + baselineLine(base) + "\n\n")
	b.WriteString("History: with go-containerregistry's own disk blob handler, `Stat` hashed the whole blob on every HEAD and before every GET, and a PATCH upload was held in memory " +
		"until the final PUT (a 1 GiB push peaked at 2.3 GiB RSS). `internal/registry` now answers `Stat` from the file size (a blob is stored only after its digest checked) " +
		"and streams upload sessions to files in the state folder; the figures above are with those changes.\n")
	return b.String(), nil
}
