package reconcile

import (
	"context"
	"errors"
	"sync"
)

// job is one piece of the work Apply does in memory: a key to generate or a
// certificate to sign.
type job struct {
	run func() error
	// after lists the jobs (indices) that must be done before this one starts.
	after []int
	// first puts the job ahead of every ready job without it. Signing is
	// short and unblocks others (a CA's leaves), so it does not wait behind
	// a key generation of a second or more.
	first bool
}

// runJobs runs every job once, on up to workers goroutines: each job as
// soon as a worker is free and the jobs it comes after are done, those
// marked first before the others, otherwise in the order given. Workers take
// jobs one at a time rather than a share each, so a slow key (RSA prime
// search takes anywhere from a tenth to four times its median) holds up
// one worker while the others carry on.
//
// The first error a job returns, or the end of ctx, stops runJobs from
// starting more jobs; it waits for those running and returns that error.
func runJobs(ctx context.Context, workers int, jobs []job) error {
	var (
		mu   sync.Mutex
		wake = sync.NewCond(&mu)
		// waiting counts, per job, the jobs it comes after still to finish;
		// next lists, per job, the jobs that come after it.
		waiting = make([]int, len(jobs))
		next    = make([][]int, len(jobs))
		ready   []int
		running int
		left    = len(jobs)
		err     error
	)
	for i, j := range jobs {
		waiting[i] = len(j.after)
		for _, a := range j.after {
			next[a] = append(next[a], i)
		}
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		wake.Broadcast()
	})
	defer stop()

	// take returns the next job to run, or -1 when there is none to come.
	// It is called with mu held.
	take := func() int {
		for {
			if left == 0 {
				return -1
			}
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				return -1
			}
			if len(ready) > 0 {
				k := 0
				for x, i := range ready {
					if jobs[i].first && !jobs[ready[k]].first || jobs[i].first == jobs[ready[k]].first && i < ready[k] {
						k = x
					}
				}
				i := ready[k]
				ready = append(ready[:k], ready[k+1:]...)
				running++
				return i
			}
			if running == 0 {
				// Only a job that comes after itself, through others, gets here.
				err = errors.New("internal error: jobs wait for each other")
				wake.Broadcast()
				return -1
			}
			wake.Wait()
		}
	}
	var wg sync.WaitGroup
	for range max(1, min(workers, len(jobs))) {
		wg.Go(func() {
			mu.Lock()
			defer mu.Unlock()
			for i := take(); i >= 0; i = take() {
				mu.Unlock()
				jerr := jobs[i].run()
				mu.Lock()
				running--
				left--
				if jerr != nil && err == nil {
					err = jerr
				}
				for _, n := range next[i] {
					if waiting[n]--; waiting[n] == 0 {
						ready = append(ready, n)
					}
				}
				wake.Broadcast()
			}
		})
	}
	wg.Wait()
	return err
}
