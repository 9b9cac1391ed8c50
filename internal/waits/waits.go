// Package waits holds the one way the adapters wait between retries: a sleep that ends
// early, with the context's error, when the context ends.
package waits

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx ends (and then returns its error).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
