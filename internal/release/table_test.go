package release_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/release"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "golden file missing: run go test ./internal/release -update")
	assert.Equal(t, string(want), got)
}

func TestTableFromNothing(t *testing.T) {
	tb, err := release.ParseTable("")
	require.NoError(t, err)
	assert.True(t, tb.Upsert(release.Row{Image: "quay.io/intel/intel-dgpu-driver:1.2.3-5.14.0-427.13.1.el9_4.x86_64", I915Tag: "I915_A", FirmwareTag: "FW_A", RHEL: "9.4", OpenShift: "4.16.3"}))
	golden(t, "table_new.md", tb.Render())
}

func TestTableRoundTripAndUpsert(t *testing.T) {
	in, err := os.ReadFile("testdata/table_in.md")
	require.NoError(t, err)
	tb, err := release.ParseTable(string(in))
	require.NoError(t, err)
	require.Len(t, tb.Rows, 3)
	assert.Equal(t, string(in), tb.Render(), "a sorted table renders back byte for byte")

	row := release.Row{Image: "quay.io/intel/intel-dgpu-driver:1.2.4-5.14.0-427.22.1.el9_4.x86_64", I915Tag: "I915_B", FirmwareTag: "FW_B", RHEL: "9.4", OpenShift: "4.16.10"}
	assert.True(t, tb.Upsert(row))
	assert.False(t, tb.Upsert(row), "the same row twice changes nothing")
	changed := row
	changed.FirmwareTag = "FW_C"
	assert.True(t, tb.Upsert(changed), "a row for the same image is replaced, not added")
	golden(t, "table_out.md", tb.Render())

	again, err := release.ParseTable(tb.Render())
	require.NoError(t, err)
	assert.Len(t, again.Rows, 4)
}

func TestTableErrors(t *testing.T) {
	_, err := release.ParseTable("| Image | Intel GPU Driver | RHEL Version | RHOCP Version |\n|---|---|---|---|\n| `x` | bad | 9.4 | 4.16.3 |\n")
	require.ErrorContains(t, err, "line 3")
	require.ErrorContains(t, err, "i915 `<tag>`, firmware `<tag>`")
	_, err = release.ParseTable("| Image | Intel GPU Driver | RHEL Version | RHOCP Version |\n|---|---|---|---|\n| `x` | 9.4 |\n")
	require.ErrorContains(t, err, "needs 4 cells")
	tb, err := release.ParseTable("# Notes\nno table yet\n")
	require.NoError(t, err)
	assert.Empty(t, tb.Rows)
	assert.Contains(t, tb.Render(), "# Notes\nno table yet\n\n| Image |")
}
