package partnercentertest

import "net/http"

// maxStoredResponses bounds the idempotency store; the oldest answers are forgotten first. A client
// retries within minutes, and a long-running sandbox must not grow without limit.
const maxStoredResponses = 10000

// claim looks a write up in the idempotency store by its key (method, path and MS-RequestId). It returns
// the stored answer of an earlier identical request, or reports that one is still being processed;
// otherwise it marks the key in flight and the caller must settle it.
func (s *Server) claim(key string) (stored *storedResponse, inFlight bool) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if sr, seen := s.replays[key]; seen {
		return sr, sr == nil
	}
	s.replays[key] = nil // in flight
	return nil, false
}

// settle records the answer to a claimed write. Answers that invite a retry (409 busy, 429, 5xx) are not
// kept: the retry must be served afresh, or it would be refused forever.
func (s *Server) settle(key string, res result) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if res.status == http.StatusConflict || res.status == http.StatusTooManyRequests || res.status >= 500 {
		delete(s.replays, key)
		return
	}
	s.replays[key] = res.render()
	s.replayQ = append(s.replayQ, key)
	if len(s.replayQ) > maxStoredResponses {
		delete(s.replays, s.replayQ[0])
		s.replayQ = s.replayQ[1:]
	}
}
