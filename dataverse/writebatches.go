package dataverse

import (
	"context"
	"errors"
	"sync"
)

// WriteBatches is WriteBatch over more operations than one $batch should carry: ops in $batches of size
// operations (the client's BatchSize when size ≤ 0), up to the client's BulkConcurrency of them in flight.
// Dataverse's execution time budget (1,200 s per 300 s) lets about four large batches run at once; one
// at a time leaves three quarters of it unused. The error joins those of the $batches that failed as a
// whole; every operation of such a $batch carries its error as its result.
//
// API: POST /$batch (as WriteBatch), several at once
func (c *Client) WriteBatches(ctx context.Context, ops []Op, size int) ([]OpResult, error) {
	if size <= 0 {
		size = c.opts.BatchSize
	}
	size = min(size, MaxBatchOperations)
	results := make([]OpResult, len(ops))
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, c.opts.BulkConcurrency)
	for start := 0; start < len(ops); start += size {
		end := min(start+size, len(ops))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := c.WriteBatch(ctx, ops[start:end])
			if err != nil {
				for i := start; i < end; i++ {
					results[i] = OpResult{Err: err}
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			copy(results[start:end], res)
		})
	}
	wg.Wait()
	return results, errors.Join(errs...)
}
