package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"dgpu-release/internal/registry"
	"dgpu-release/internal/rehearsal"
)

// Benchmark image layout.
const (
	benchRepo       = "bench/src"
	benchTag        = "bench"
	randomLayers    = 8
	randomFileBytes = 1 << 20 // each random layer holds files of 1 MiB
)

// benchImage is the image publish and certify measure: the rehearsal image's stand-in
// UBI base layer (with its rpm database) and a license layer, then randomLayers layers of
// random files, so it passes every check of the root policy.
type benchImage struct {
	Host        string // registry host:port, spoken to directly
	Repo        string // repository path, bench/src
	Tag         string
	Digest      string
	Layers      int
	Random      int64 // random bytes in the random layers
	Compressed  int64 // sum of the compressed sizes of every layer
	Files       int   // random files
	UBIList     string
	Gen         time.Duration // writing the random layers
	Push        time.Duration // pushing with our client (registry.Client.Push)
	Specs       []layerSpec   // the random layers' files
	LargestBlob string        // digest of the largest layer
	LargestSize int64
	image       v1.Image
}

// layerSpec is a random layer written to a file, with its digests, so that a child
// process can assemble the same image without reading the file again.
type layerSpec struct {
	Path   string
	Digest string
	DiffID string
	Size   int64
}

func (s layerSpec) layer() (v1.Layer, error) {
	d, err := v1.NewHash(s.Digest)
	if err != nil {
		return nil, err
	}
	diff, err := v1.NewHash(s.DiffID)
	if err != nil {
		return nil, err
	}
	return &gzFileLayer{path: s.Path, digest: d, diffID: diff, size: s.Size}, nil
}

// assembleBench makes the benchmark image: the stand-in UBI base layer, a license
// layer, then the random layers, with the labels the certification wants. The same
// specs give the same digest.
func assembleBench(specs []layerSpec) (v1.Image, error) {
	base, err := rehearsal.BaseLayer()
	if err != nil {
		return nil, err
	}
	lic, err := registry.Layer([]registry.File{{Path: "/licenses/LICENSE", Content: []byte("Benchmark image of hack/bench: random data, no software. Stand-in license text.\n")}})
	if err != nil {
		return nil, err
	}
	layers := []v1.Layer{base, lic}
	for _, s := range specs {
		l, err := s.layer()
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	labels := map[string]string{
		"name": "dgpu-release-bench", "vendor": "dgpu-release benchmark", "version": "0.0.0", "release": "1",
		"summary": "benchmark image", "description": "random data written by hack/bench", "maintainer": "dgpu-release benchmark",
		"io.dgpu-release.bench": "random data, not a driver image",
	}
	return registry.Assemble(layers, v1.Config{Labels: labels, Env: []string{"PATH=/usr/bin"}})
}

func (b *benchImage) Ref() string { return b.Host + "/" + b.Repo + "@" + b.Digest }

// describe is one paragraph about the image for the file.
func (b *benchImage) describe() string {
	return fmt.Sprintf("The image (`%s@%s`): %d layers, %s compressed in all. %d layers of random files (%d files of 1 MiB, %s of random bytes from ChaCha8, "+
		"new random data every run), written as gzip (level 1, BestSpeed) tar layers: random data does not compress, so compressed ≈ uncompressed; "+
		"below them the rehearsal image's stand-in UBI base layer (a real rpm database) and a /licenses layer, and the labels the certification wants, "+
		"so it passes every check of the root policy. Pushed once to `%s` by our client (`registry.Client.Push`) in %s (%s); writing the random layers took %s.",
		b.Repo, short(b.Digest), b.Layers, fmtMiB(b.Compressed), randomLayers, b.Files, fmtMiB(b.Random), b.Repo+":"+b.Tag, fmtDur(b.Push), rate(b.Compressed, b.Push), fmtDur(b.Gen))
}

func short(d string) string {
	s := strings.TrimPrefix(d, "sha256:")
	if len(s) > 12 {
		s = s[:12]
	}
	return "sha256:" + s
}

// BenchImage builds the benchmark image once per run and pushes it to the third-party
// registry as bench/src:bench.
func (e *env) BenchImage(ctx context.Context) (*benchImage, error) {
	e.imgOnce.Do(func() { e.img, e.imgErr = e.buildImage(ctx) })
	return e.img, e.imgErr
}

func (e *env) buildImage(ctx context.Context) (*benchImage, error) {
	host, err := e.ThirdPartyRegistry(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.Path("layers"), 0o755); err != nil {
		return nil, err
	}
	b := &benchImage{Host: host, Repo: benchRepo, Tag: benchTag}
	total := int64(e.SizeMiB) << 20
	per := total / randomLayers
	e.Logf("writing %d random layers of %s each into %s", randomLayers, fmtMiB(per), e.Path("layers"))
	t0 := time.Now()
	specs := make([]layerSpec, randomLayers)
	errs := make([]error, randomLayers)
	files := make([]int, randomLayers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := range randomLayers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			spec, n, err := writeRandomLayer(ctx, e.Path("layers", fmt.Sprintf("layer-%d.tar.gz", i)), i, per)
			specs[i], files[i], errs[i] = spec, n, err
			if err == nil {
				e.Logf("  random layer %d/%d written", i+1, randomLayers)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("write a random layer: %w", err)
		}
	}
	b.Gen = time.Since(t0)
	for _, n := range files {
		b.Files += n
	}
	b.Random = per * randomLayers
	b.Specs = specs

	img, err := assembleBench(specs)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return nil, err
		}
		b.Compressed += s
		if s > b.LargestSize {
			d, err := l.Digest()
			if err != nil {
				return nil, err
			}
			b.LargestSize, b.LargestBlob = s, d.String()
		}
	}
	b.Layers = len(layers)
	b.image = img
	e.Logf("pushing the image (%s) to %s/%s:%s", fmtMiB(b.Compressed), host, b.Repo, b.Tag)
	t0 = time.Now()
	b.Digest, err = registry.NewClient().Push(ctx, img, host+"/"+b.Repo+":"+b.Tag)
	if err != nil {
		return nil, err
	}
	b.Push = time.Since(t0)
	e.Logf("pushed %s in %s", short(b.Digest), fmtDur(b.Push))
	b.UBIList = e.Path("certified-ubi-layers.txt")
	if err := rehearsal.WriteUBIList(b.UBIList); err != nil {
		return nil, err
	}
	return b, nil
}

// writeRandomLayer writes a gzip'd tar of random 1 MiB files totalling size bytes, and
// returns it as a layer whose digests were computed while writing.
func writeRandomLayer(ctx context.Context, path string, idx int, size int64) (layerSpec, int, error) {
	var none layerSpec
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return none, 0, err
	}
	src := rand.NewChaCha8(seed)
	f, err := os.Create(path)
	if err != nil {
		return none, 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	digest := sha256.New()
	counter := &countingWriter{}
	gz, err := gzip.NewWriterLevel(io.MultiWriter(bw, digest, counter), gzip.BestSpeed)
	if err != nil {
		return none, 0, err
	}
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(gz, diff))
	dir := fmt.Sprintf("opt/bench/layer-%d/", idx)
	if err := tw.WriteHeader(&tar.Header{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return none, 0, err
	}
	for _, d := range []string{"opt/bench/", dir} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return none, 0, err
		}
	}
	buf := make([]byte, randomFileBytes)
	n := 0
	for left := size; left > 0; n++ {
		if err := ctx.Err(); err != nil {
			return none, 0, err
		}
		sz := min(left, int64(randomFileBytes))
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sfile-%05d.bin", dir, n), Typeflag: tar.TypeReg, Mode: 0o644, Size: sz}); err != nil {
			return none, 0, err
		}
		_, _ = src.Read(buf[:sz])
		if _, err := tw.Write(buf[:sz]); err != nil {
			return none, 0, err
		}
		left -= sz
	}
	if err := tw.Close(); err != nil {
		return none, 0, err
	}
	if err := gz.Close(); err != nil {
		return none, 0, err
	}
	if err := bw.Flush(); err != nil {
		return none, 0, err
	}
	if err := f.Close(); err != nil {
		return none, 0, err
	}
	return layerSpec{Path: path, Digest: hashOf(digest).String(), DiffID: hashOf(diff).String(), Size: counter.n}, n, nil
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }

// gzFileLayer is a gzip'd tar layer in a file whose digests are already known, so that
// assembling and pushing the image does not read it again to hash it.
type gzFileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

func (l *gzFileLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *gzFileLayer) DiffID() (v1.Hash, error)             { return l.diffID, nil }
func (l *gzFileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *gzFileLayer) MediaType() (types.MediaType, error)  { return types.DockerLayer, nil }
func (l *gzFileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *gzFileLayer) Uncompressed() (io.ReadCloser, error) { return openGzip(l.path) }

func openGzip(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, closers{zr, f}}, nil
}

type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
