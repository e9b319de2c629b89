package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// jobLog records, under a lock, which jobs ran and in which order, and
// whether a job started before a job it comes after had finished.
type jobLog struct {
	mu       sync.Mutex
	finished map[int]bool
	order    []int
	early    []string
}

// jobs turns the shape (each job's after list, and which are first) into
// jobs that log themselves; fail, if set, says which job errs and how.
func (l *jobLog) jobs(after [][]int, first []bool, fail func(i int) error) []job {
	l.finished = map[int]bool{}
	out := make([]job, len(after))
	for i := range after {
		out[i] = job{after: after[i], first: first != nil && first[i], run: func() error {
			l.mu.Lock()
			for _, a := range after[i] {
				if !l.finished[a] {
					l.early = append(l.early, fmt.Sprintf("%d before %d", i, a))
				}
			}
			l.order = append(l.order, i)
			l.mu.Unlock()
			var err error
			if fail != nil {
				err = fail(i)
			}
			l.mu.Lock()
			l.finished[i] = true
			l.mu.Unlock()
			return err
		}}
	}
	return out
}

// TestRunJobs: every job runs exactly once, never before the jobs it comes
// after, whatever the number of workers.
func TestRunJobs(t *testing.T) {
	shapes := []struct {
		name  string
		after [][]int
	}{
		{"none", nil},
		{"one", [][]int{nil}},
		// Apply's shape: keys 0–3 (0 a CA's), then sign jobs: 4 the CA's
		// certificate after its key, 5–7 leaves after their key and the CA.
		{"pki", [][]int{nil, nil, nil, nil, {0}, {1, 4}, {2, 4}, {3, 4}}},
		{"chain", [][]int{nil, {0}, {1}, {2}, {3}}},
		{"after a later job", [][]int{{3}, {3}, nil, {2}}},
		{"wide", [][]int{nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}},
	}
	for _, sh := range shapes {
		for _, workers := range []int{0, 1, 2, 16} {
			t.Run(fmt.Sprintf("%s/workers=%d", sh.name, workers), func(t *testing.T) {
				var l jobLog
				if err := runJobs(context.Background(), workers, l.jobs(sh.after, nil, nil)); err != nil {
					t.Fatalf("runJobs: %v", err)
				}
				ran := slices.Sorted(slices.Values(l.order))
				for i := range sh.after {
					if n := len(ran); i >= n || ran[i] != i {
						t.Fatalf("jobs run %v, want each of the %d jobs once", l.order, len(sh.after))
					}
				}
				if len(ran) != len(sh.after) {
					t.Fatalf("jobs run %v, want each of the %d jobs once", l.order, len(sh.after))
				}
				if l.early != nil {
					t.Errorf("jobs started too early: %v", l.early)
				}
			})
		}
	}
}

// TestRunJobsOrder: one worker takes a ready job marked first (signing)
// before the next key, and otherwise the jobs in the order given — the
// order that starts the CA keys first and signs each certificate as soon
// as it can, not after every key.
func TestRunJobsOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after [][]int
		first []bool
		want  []int
	}{
		{"given order", [][]int{nil, nil, nil}, nil, []int{0, 1, 2}},
		{"sign as soon as ready", [][]int{nil, nil, nil, {0}, {1, 3}, {2, 3}}, []bool{false, false, false, true, true, true}, []int{0, 3, 1, 4, 2, 5}},
		{"first only once ready", [][]int{nil, nil, {1}}, []bool{false, false, true}, []int{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l jobLog
			if err := runJobs(context.Background(), 1, l.jobs(tc.after, tc.first, nil)); err != nil {
				t.Fatalf("runJobs: %v", err)
			}
			if !slices.Equal(l.order, tc.want) {
				t.Errorf("order %v, want %v", l.order, tc.want)
			}
		})
	}
}

// TestRunJobsStops: a job's error, the end of the context or jobs that
// wait for each other stop runJobs: it returns the error, starts nothing
// more, and does not hang.
func TestRunJobsStops(t *testing.T) {
	errKey := errors.New("no entropy")
	chain := [][]int{nil, nil, nil, {0}, {1}}
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("error/workers=%d", workers), func(t *testing.T) {
			var l jobLog
			err := runJobs(context.Background(), workers, l.jobs(chain, nil, func(i int) error {
				if i == 0 {
					return errKey
				}
				return nil
			}))
			if !errors.Is(err, errKey) {
				t.Fatalf("runJobs = %v, want %v", err, errKey)
			}
			if slices.Contains(l.order, 3) {
				t.Errorf("job 3, after the failed job 0, ran: %v", l.order)
			}
			if workers == 1 && !slices.Equal(l.order, []int{0}) {
				t.Errorf("one worker ran %v after job 0 failed, want nothing more", l.order)
			}
		})
		t.Run(fmt.Sprintf("canceled/workers=%d", workers), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var l jobLog
			err := runJobs(ctx, workers, l.jobs(chain, nil, func(i int) error {
				if i == 1 {
					cancel()
				}
				return nil
			}))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("runJobs = %v, want context.Canceled", err)
			}
			if slices.Contains(l.order, 4) {
				t.Errorf("job 4 ran after the cancel in job 1: %v", l.order)
			}
		})
	}
	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var l jobLog
		if err := runJobs(ctx, 2, l.jobs(chain, nil, nil)); !errors.Is(err, context.Canceled) || l.order != nil {
			t.Fatalf("runJobs = %v after running %v, want context.Canceled and nothing run", err, l.order)
		}
	})
	t.Run("cycle", func(t *testing.T) {
		var l jobLog
		err := runJobs(context.Background(), 2, l.jobs([][]int{nil, {2}, {1}}, nil, nil))
		if err == nil || !slices.Equal(l.order, []int{0}) {
			t.Fatalf("runJobs with jobs waiting for each other = %v after running %v, want an error after job 0", err, l.order)
		}
	})
}
