package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/catalog"
)

func TestLocalCatalogIsIdempotent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := catalog.NewLocal(dir)
	require.NoError(t, err)
	found, err := c.FindByDigest(ctx, "sha256:aa")
	require.NoError(t, err)
	assert.Nil(t, found)

	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a, err := c.Record(ctx, catalog.Image{DockerImageDigest: "sha256:aa", BuildKey: "sha256:k", CreationDate: created,
		Repositories: []catalog.Repository{{Registry: "r", Repository: "intel/driver", Tags: []string{"1.2.3-k"}}}})
	require.NoError(t, err)
	assert.NotEmpty(t, a.ID)
	assert.Contains(t, a.StandIn, "stand-in")

	b, err := c.Record(ctx, catalog.Image{DockerImageDigest: "sha256:aa", BuildKey: "sha256:k", CreationDate: created.Add(time.Hour),
		Repositories: []catalog.Repository{{Registry: "r", Repository: "intel/driver", Tags: []string{"1.2.3-k", "extra"}}}})
	require.NoError(t, err)
	assert.Equal(t, a.ID, b.ID, "same digest, same record")
	assert.Equal(t, created, b.CreationDate)
	assert.Equal(t, []string{"1.2.3-k", "extra"}, b.Repositories[0].Tags)

	c2, err := catalog.NewLocal(dir)
	require.NoError(t, err)
	all, err := c2.List(ctx)
	require.NoError(t, err)
	assert.Len(t, all, 1, "one record, found again from the folder")
	found, err = c2.FindByDigest(ctx, "sha256:aa")
	require.NoError(t, err)
	require.NotNil(t, found)
	assert.Equal(t, "sha256:aa", found.DockerImageDigest)

	_, err = c.Record(ctx, catalog.Image{DockerImageDigest: "latest"})
	require.ErrorContains(t, err, "docker_image_digest")
}
