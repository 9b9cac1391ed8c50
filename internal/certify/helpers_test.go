package certify_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/certify"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/rpm"
)

func bashPkg(version string) rpm.Package {
	return rpm.Package{Name: "bash", Version: version, Release: "6.el9", Arch: "x86_64", Files: []rpm.File{
		{Path: "/usr/bin/bash", Mode: 0o100755, Size: 9},
		{Path: "/etc/skel/.bashrc", Mode: 0o100644, Flags: rpm.FileConfig, Size: 9},
		{Path: "/usr/share/doc/bash", Mode: 0o040755},
	}}
}

// rpmdbFile is an rpm SQLite database with the packages, at the UBI 9 path.
func rpmdbFile(t *testing.T, pkgs []rpm.Package) registry.File {
	t.Helper()
	b, err := rpm.SQLiteBytes(pkgs)
	require.NoError(t, err)
	return registry.File{Path: "/var/lib/rpm/rpmdb.sqlite", Content: b}
}

// baseLayer holds the packages' files and their rpm database.
func baseLayer(t *testing.T, pkgs []rpm.Package) v1.Layer {
	t.Helper()
	files := []registry.File{rpmdbFile(t, pkgs)}
	for _, p := range pkgs {
		for _, f := range p.Files {
			if f.IsDir() {
				files = append(files, registry.File{Path: f.Path, Dir: true})
			} else {
				files = append(files, registry.File{Path: f.Path, Content: []byte("original\n")})
			}
		}
	}
	return layerOf(t, files...)
}

func layerOf(t *testing.T, files ...registry.File) v1.Layer {
	t.Helper()
	l, err := registry.Layer(files)
	require.NoError(t, err)
	return l
}

func imageWith(t *testing.T, layers []v1.Layer, cfg v1.Config) v1.Image {
	t.Helper()
	img, err := registry.Assemble(layers, cfg)
	require.NoError(t, err)
	return img
}

func listFile(t *testing.T, ids ...string) certify.ListFile {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ubi-layers.txt")
	var b bytes.Buffer
	b.WriteString("# certified UBI top layers\n")
	for _, id := range ids {
		b.WriteString(id + "\n")
	}
	require.NoError(t, os.WriteFile(p, b.Bytes(), 0o644))
	return certify.ListFile{Path: p}
}

// countingLayer wraps a layer so the test can count how often its content is opened.
func countingLayer(t *testing.T, l v1.Layer, opens *int32) v1.Layer {
	t.Helper()
	rc, err := l.Uncompressed()
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	rc.Close()
	out, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		atomic.AddInt32(opens, 1)
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	require.NoError(t, err)
	return out
}
