package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"dgpu-release/internal/registry"
)

func init() {
	register(section{Name: "publish", Order: 30, Title: "Publish: our copy against skopeo", Run: runPublish})
}

// publishRuns is how many times each copy is timed.
const publishRuns = 3

// copyRun is one timed copy.
type copyRun struct {
	took    time.Duration
	src     traffic // what the source registry's proxy saw
	dst     traffic // what the target registry's proxy saw (the same proxy within one registry)
	kept    bool    // the target's digest is the source's
	already bool    // our client said AlreadyPresent
}

type copyTool struct {
	name string
	// copy copies srcHost/bench/src to dstHost/dstRepo:bench.
	copy func(ctx context.Context, srcHost, dstHost, dstRepo string) (already bool, err error)
}

func runPublish(ctx context.Context, e *env) (string, error) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		return "", errors.New("skopeo is not installed: apt-get install skopeo (the Debian package; the bench runs /usr/bin/skopeo copy) — the comparison needs it")
	}
	skopeoVersion := "unknown"
	if b, err := exec.CommandContext(ctx, skopeo, "--version").Output(); err == nil {
		skopeoVersion = strings.TrimSpace(string(b))
	}
	host, err := e.ThirdPartyRegistry(ctx)
	if err != nil {
		return "", err
	}
	img, err := e.BenchImage(ctx)
	if err != nil {
		return "", err
	}
	p1, err := newCountingProxy(host)
	if err != nil {
		return "", err
	}
	defer p1.Close()
	client := registry.NewClient()

	ours := copyTool{name: "ours", copy: func(ctx context.Context, srcHost, dstHost, dstRepo string) (bool, error) {
		// What the publish step does: activities.Publisher.PublishImage calls
		// Registry.Copy(staged ref by digest, release repo, tag); the catalog record after
		// it is not part of the copy and not measured here.
		res, err := client.Copy(ctx, srcHost+"/"+img.Repo+"@"+img.Digest, dstHost+"/"+dstRepo, img.Tag)
		return res.AlreadyPresent, err
	}}
	skopeoTool := copyTool{name: "skopeo", copy: func(ctx context.Context, srcHost, dstHost, dstRepo string) (bool, error) {
		cmd := exec.CommandContext(ctx, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
			"docker://"+srcHost+"/"+img.Repo+":"+img.Tag, "docker://"+dstHost+"/"+dstRepo+":"+img.Tag)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return false, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, tail(out.String(), 20))
		}
		return false, nil
	}}
	tools := []copyTool{ours, skopeoTool}

	// verify checks that a copy kept the manifest digest.
	verify := func(ctx context.Context, h, repo string) (bool, error) {
		d, ok, err := client.Digest(ctx, h+"/"+repo+":"+img.Tag)
		if err != nil {
			return false, err
		}
		return ok && d == img.Digest, nil
	}

	// One registry, two repositories: a blob mount is possible.
	same := map[string][]copyRun{}
	for i := 1; i <= publishRuns; i++ {
		for _, t := range orderFor(i, tools) {
			repo := fmt.Sprintf("bench/%s-%d", t.name, i)
			e.Logf("publish: one registry, %s run %d/%d: %s → %s", t.name, i, publishRuns, img.Repo, repo)
			p1.Take()
			t0 := time.Now()
			already, err := t.copy(ctx, p1.Host, p1.Host, repo)
			took := time.Since(t0)
			tr := p1.Take()
			if err != nil {
				return "", fmt.Errorf("%s copy to %s: %w", t.name, repo, err)
			}
			kept, err := verify(ctx, host, repo)
			if err != nil {
				return "", err
			}
			same[t.name] = append(same[t.name], copyRun{took: took, src: tr, dst: tr, kept: kept, already: already})
			e.Logf("  %s in %s", t.name, fmtDur(took))
		}
	}
	// Re-publish to a target that has the image.
	again := map[string]copyRun{}
	for _, t := range tools {
		repo := fmt.Sprintf("bench/%s-1", t.name)
		e.Logf("publish: re-publish with %s to %s", t.name, repo)
		p1.Take()
		t0 := time.Now()
		already, err := t.copy(ctx, p1.Host, p1.Host, repo)
		took := time.Since(t0)
		tr := p1.Take()
		if err != nil {
			return "", fmt.Errorf("%s re-publish to %s: %w", t.name, repo, err)
		}
		kept, err := verify(ctx, host, repo)
		if err != nil {
			return "", err
		}
		again[t.name] = copyRun{took: took, src: tr, dst: tr, kept: kept, already: already}
	}
	if !again["ours"].already {
		return "", errors.New("our re-publish did not report AlreadyPresent: the copy is not a no-op")
	}

	// Two registries: no mount is possible, every byte crosses. Each copy gets a fresh
	// target registry, so that neither tool can reuse what an earlier copy left there
	// (skopeo keeps a blob-info cache of where it has seen blobs).
	two := map[string][]copyRun{}
	for i := 1; i <= publishRuns; i++ {
		for _, t := range orderFor(i, tools) {
			r2, err := e.StartRegistry(ctx, fmt.Sprintf("registry-target-%s-%d", t.name, i))
			if err != nil {
				return "", err
			}
			p2, err := newCountingProxy(r2.Host)
			if err != nil {
				r2.Stop(true)
				return "", err
			}
			repo := "bench/" + t.name
			e.Logf("publish: two registries, %s run %d/%d: %s → %s/%s", t.name, i, publishRuns, img.Repo, r2.Host, repo)
			p1.Take()
			t0 := time.Now()
			_, err = t.copy(ctx, p1.Host, p2.Host, repo)
			took := time.Since(t0)
			run := copyRun{took: took, src: p1.Take(), dst: p2.Take()}
			if err == nil {
				run.kept, err = verify(ctx, r2.Host, repo)
			}
			p2.Close()
			r2.Stop(true)
			if err != nil {
				return "", fmt.Errorf("%s copy to a second registry: %w", t.name, err)
			}
			two[t.name] = append(two[t.name], run)
			e.Logf("  %s in %s", t.name, fmtDur(took))
		}
	}

	// skopeo's own start-up, for scale.
	var skStart []time.Duration
	for range 3 {
		t0 := time.Now()
		if err := exec.CommandContext(ctx, skopeo, "--version").Run(); err != nil {
			return "", err
		}
		skStart = append(skStart, time.Since(t0))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "What the release's publish step runs: `registry.Client.Copy` (called by `activities.Publisher.PublishImage`; the catalog record that follows it is not timed) "+
		"against `%s`, in the same run.\n\n", "skopeo copy --src-tls-verify=false --dest-tls-verify=false docker://HOST/bench/src:bench docker://HOST/REPO:bench")
	b.WriteString("- " + img.describe() + "\n")
	fmt.Fprintf(&b, "- Registry: %s, %s.\n", registryVersion(ctx), e.tpDescOr(host))
	fmt.Fprintf(&b, "- skopeo: %s (`%s`); its process start-up (`skopeo --version`) takes %s (median of 3).\n", skopeoVersion, skopeo, fmtDur(median(skStart)))
	fmt.Fprintf(&b, "- Every request of both tools goes through a counting reverse proxy (`net/http/httputil`) in the bench process, in front of each registry, so both pay the same extra hop. "+
		"Each tool copies %d times per comparison, to a new repository (or a new registry) each time; which tool goes first alternates between runs.\n", publishRuns)
	b.WriteString("- skopeo remembers where it saw each blob in its blob-info cache (`/var/lib/containers/cache/blob-info-cache-v1.boltdb` as root, `~/.local/share/containers/cache/` otherwise) and may mount from there: " +
		"the image is new random data each bench run, so earlier runs left nothing it can use, but its runs 2 and 3 here can use what run 1 recorded.\n")
	b.WriteString("- The page cache is warm: the source blobs were just written by the push.\n\n")

	b.WriteString("### One registry, two repositories (bench/src → bench/TOOL-N)\n\n")
	b.WriteString(timingTable(same, tools))
	fmt.Fprintf(&b, "\nours / skopeo (medians): **%s**; ours (median) / skopeo run 1 (its first copy of these blobs, before its blob-info cache knew them): **%s**.\n\n",
		ratio(median(durs(same["ours"])), median(durs(same["skopeo"]))), ratio(median(durs(same["ours"])), same["skopeo"][0].took))
	b.WriteString(mountSentence(same) + "\n\n")
	cols, ts := []string{}, []traffic{}
	for _, t := range tools {
		for i, r := range same[t.name] {
			cols = append(cols, fmt.Sprintf("%s run %d", t.name, i+1))
			ts = append(ts, r.dst)
		}
		cols = append(cols, t.name+" re-publish")
		ts = append(ts, again[t.name].dst)
	}
	b.WriteString("Requests the registry received, by kind (through the proxy):\n\n")
	b.WriteString(trafficTable(cols, ts))

	b.WriteString("\n### Re-publish: the same image to a target that already has it\n\n")
	b.WriteString("| tool | time | blob upload requests | mounts asked | bytes sent | digest kept | |\n|---|---:|---:|---:|---:|---|---|\n")
	for _, t := range tools {
		r := again[t.name]
		a, _ := r.dst.mounts()
		note := ""
		if t.name == "ours" {
			note = "`Copy` returned AlreadyPresent: it read the target's manifest digest and stopped"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s |\n", t.name, fmtDur(r.took), r.dst.uploads(), a, fmtMiB(r.dst.Sent), yesNo(r.kept), note)
	}
	fmt.Fprintf(&b, "\nOur re-publish sent %d blob upload requests and %s of request bodies (the counts per kind are the \"re-publish\" columns above).\n", again["ours"].dst.uploads(), fmtMiB(again["ours"].dst.Sent))

	b.WriteString("\n### Two registries (no mount possible: every byte crosses)\n\n")
	b.WriteString("Source: the registry above (through its proxy); target: a new docker-registry per copy (through its own proxy), removed after the copy.\n\n")
	b.WriteString(timingTable(two, tools))
	fmt.Fprintf(&b, "\nours / skopeo (medians): **%s**.\n\n", ratio(median(durs(two["ours"])), median(durs(two["skopeo"]))))
	b.WriteString("Our client (go-containerregistry's `remote.Write`) asks for every blob as a mount, naming the source repository, even from another registry: " +
		"the target answers 202 and that request opens the upload, in place of the plain POST skopeo sends, so it costs no extra request.\n\n")
	b.WriteString("| tool, run | time | read from source | sent to target | throughput (sent / time) | blob upload requests | mounts asked |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range tools {
		for i, r := range two[t.name] {
			a, _ := r.dst.mounts()
			fmt.Fprintf(&b, "| %s run %d | %s | %s | %s | %s | %d | %d |\n", t.name, i+1, fmtDur(r.took), fmtMiB(r.src.Recv), fmtMiB(r.dst.Sent), rate(r.dst.Sent, r.took), r.dst.uploads(), a)
		}
	}
	b.WriteString("\nRequests the target registry received in run 1, by kind:\n\n")
	b.WriteString(trafficTable([]string{"ours run 1", "skopeo run 1"}, []traffic{two["ours"][0].dst, two["skopeo"][0].dst}))

	emb, err := runEmbedded(ctx, e, img)
	b.WriteString(emb)
	return b.String(), err
}

// orderFor alternates which tool goes first.
func orderFor(run int, tools []copyTool) []copyTool {
	if run%2 == 1 {
		return tools
	}
	out := make([]copyTool, len(tools))
	for i, t := range tools {
		out[len(tools)-1-i] = t
	}
	return out
}

func durs(rs []copyRun) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		out = append(out, r.took)
	}
	return out
}

func timingTable(runs map[string][]copyRun, tools []copyTool) string {
	var b strings.Builder
	b.WriteString("| tool | runs | median | min | every run | digest kept |\n|---|---:|---:|---:|---|---|\n")
	for _, t := range tools {
		rs := runs[t.name]
		kept := true
		for _, r := range rs {
			kept = kept && r.kept
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", t.name, len(rs), fmtDur(median(durs(rs))), fmtDur(minDur(durs(rs))), fmtDurs(durs(rs)), yesNo(kept))
	}
	return b.String()
}

// mountSentence says which tool mounted blobs in the one-registry runs.
func mountSentence(runs map[string][]copyRun) string {
	var parts []string
	for _, name := range []string{"ours", "skopeo"} {
		var per []string
		for i, r := range runs[name] {
			a, m := r.dst.mounts()
			per = append(per, fmt.Sprintf("run %d: %d of %d mounts honoured, %d upload requests, %s sent", i+1, m, a, r.dst.uploads(), fmtMiB(r.dst.Sent)))
		}
		parts = append(parts, fmt.Sprintf("**%s** — %s", name, strings.Join(per, "; ")))
	}
	return "Cross-repository blob mounts (counted at the proxy): " + strings.Join(parts, ". ") + "."
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// tpDescOr describes the third-party registry.
func (e *env) tpDescOr(host string) string {
	if e.tpDesc != "" {
		return e.tpDesc
	}
	return host
}
