package waits_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"dgpu-release/internal/waits"
)

func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, waits.Sleep(ctx, time.Hour), context.Canceled, "a cancelled context ends an hour's wait at once")
	assert.NoError(t, waits.Sleep(context.Background(), time.Millisecond))
}
