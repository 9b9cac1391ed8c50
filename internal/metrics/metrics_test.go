package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/metrics"
)

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := metrics.New(reg)
	h.WithTags(map[string]string{"outcome": "released"}).Counter("dgpu_release_finished").Inc(2)
	h.WithTags(map[string]string{"outcome": "aborted"}).Counter("dgpu_release_finished").Inc(1)
	h.WithTags(map[string]string{"step": "build", "result": "ok"}).Timer("dgpu_release_step_duration").Record(3 * time.Second)
	h.Gauge("temporal_worker_task_slots_available").Update(7)
	// The same name with another label set stays valid under its own name.
	h.WithTags(map[string]string{"namespace": "default"}).Counter("dgpu_release_finished").Inc(1)

	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	assert.True(t, names["dgpu_release_finished"])
	assert.True(t, names["dgpu_release_finished__namespace"])
	assert.True(t, names["dgpu_release_step_duration_seconds"])
	assert.True(t, names["temporal_worker_task_slots_available"])
}
