package rpm_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/rpm"
)

func sample() rpm.Package {
	return rpm.Package{Name: "kmod", Epoch: 1, Version: "28", Release: "9.el9", Arch: "x86_64", Files: []rpm.File{
		{Path: "/usr/bin/kmod", Mode: 0o100755, Size: 170000, Digest: "ab"},
		{Path: "/etc/depmod.d/dist.conf", Mode: 0o100644, Flags: rpm.FileConfig, Size: 10},
		{Path: "/usr/lib/modprobe.d", Mode: 0o040755},
	}}
}

func TestHeaderRoundTrip(t *testing.T) {
	p := sample()
	got, err := rpm.ParseHeader(rpm.EncodeHeader(p))
	require.NoError(t, err)
	assert.Equal(t, p, got)
	assert.Equal(t, "kmod-1:28-9.el9.x86_64", got.NEVRA())
	assert.True(t, got.Files[1].IsConfig())
	assert.True(t, got.Files[2].IsDir())

	_, err = rpm.ParseHeader([]byte{0, 0, 0, 1})
	require.Error(t, err)
	blob := rpm.EncodeHeader(p)
	_, err = rpm.ParseHeader(blob[:len(blob)-20])
	require.ErrorContains(t, err, "shorter")
}

func TestSQLiteRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	require.NoError(t, rpm.WriteSQLite(path, []rpm.Package{sample(), {Name: "bash", Version: "5.1.8", Release: "6.el9", Arch: "x86_64"}}))
	pkgs, err := rpm.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, pkgs, 2)
	assert.Equal(t, sample(), pkgs[0])
	assert.Equal(t, "bash", pkgs[1].Name)
}

// Real databases from real distributions (kept in go-rpmdb's module, read in place) check
// the header decoder against what rpm itself wrote.
func TestRealDatabases(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/knqyf263/go-rpmdb").Output()
	require.NoError(t, err, "go-rpmdb's module must be downloaded (go mod download)")
	dir := filepath.Join(strings.TrimSpace(string(out)), "pkg", "testdata")
	for _, tc := range []struct {
		db      string
		atLeast int
		pkg     string
		file    string
	}{
		{"centos7-plain/Packages", 100, "bash", "/usr/bin/bash"},
		{"centos5-plain/Packages", 50, "bash", "/bin/bash"},
		{"fedora35/rpmdb.sqlite", 100, "bash", "/usr/bin/bash"},
	} {
		t.Run(tc.db, func(t *testing.T) {
			pkgs, err := rpm.ReadFile(filepath.Join(dir, tc.db))
			require.NoError(t, err)
			assert.GreaterOrEqual(t, len(pkgs), tc.atLeast)
			var found *rpm.Package
			for i := range pkgs {
				if pkgs[i].Name == tc.pkg {
					found = &pkgs[i]
				}
			}
			require.NotNil(t, found, "%s is installed", tc.pkg)
			assert.NotEmpty(t, found.Version)
			paths := map[string]bool{}
			for _, f := range found.Files {
				paths[f.Path] = true
			}
			assert.True(t, paths[tc.file], "%s owns %s", tc.pkg, tc.file)
		})
	}
}
