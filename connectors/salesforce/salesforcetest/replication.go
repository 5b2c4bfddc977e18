package salesforcetest

import (
	"net/http"
	"time"
)

// getDeleted (GET /sobjects/{type}/deleted/?start=&end=) and getUpdated (…/updated/) read
// the replication logs. As in Salesforce: start and end are ISO 8601 instants whose
// seconds are ignored; the window is start ≤ t < end; end must follow start by at most
// 30 days; start may not be before earliestDateAvailable, which is no earlier than 15
// days ago and moves later when the delete log is purged (SetEarliestDeletedDate); and
// latestDateCovered tells where the next window should start: end, or the start of the
// earliest write in the window not yet committed (SetCommitDelay).

const (
	maxReplicationWindow = 30 * 24 * time.Hour
	deleteLogRetention   = 15 * 24 * time.Hour
)

// SetEarliestDeletedDate purges the delete log before t, as the platform does when the
// log grows or the recycle bin is emptied: getDeleted answers earliestDateAvailable ≥ t
// and refuses windows starting before it with INVALID_REPLICATION_DATE.
func (s *Server) SetEarliestDeletedDate(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.earliestDeleted = stamp(t).Truncate(time.Minute)
}

// replicationWindow reads start and end, or answers the error and reports false.
// The delete log (deleted) keeps 15 days and may be purged earlier; the updated log
// answers for 30 days.
func (s *Server) replicationWindow(w http.ResponseWriter, r *http.Request, deleted bool) (start, end, earliest, now time.Time, ok bool) {
	q := r.URL.Query()
	st, ok1 := parseAPIDateTime(q.Get("start"))
	en, ok2 := parseAPIDateTime(q.Get("end"))
	if !ok1 || !ok2 {
		writeErrors(w, http.StatusBadRequest, "MISSING_ARGUMENT", "start and end must be ISO 8601 date-times")
		return start, end, earliest, now, false
	}
	start, end = st.Truncate(time.Minute), en.Truncate(time.Minute)
	s.mu.Lock()
	now = s.clock()
	retention := maxReplicationWindow
	if deleted {
		retention = deleteLogRetention
	}
	earliest = stamp(now.Add(-retention)).Truncate(time.Minute)
	if deleted && s.earliestDeleted.After(earliest) {
		earliest = s.earliestDeleted
	}
	s.mu.Unlock()
	switch {
	case !end.After(start):
		writeErrors(w, http.StatusBadRequest, codeReplicationDate, "startDate must chronologically precede endDate")
	case end.Sub(start) > maxReplicationWindow:
		writeErrors(w, http.StatusBadRequest, codeReplicationDate, "startDate and endDate must be no more than 30 days apart")
	case start.Before(earliest):
		writeErrors(w, http.StatusBadRequest, codeReplicationDate, "startDate is before earliestDateAvailable "+earliest.Format(dateTimeLayout))
	default:
		return start, end, earliest, now, true
	}
	return start, end, earliest, now, false
}

// covered is latestDateCovered: end (no later than now), or before the earliest write in
// the window that is not visible yet.
func covered(end, now time.Time, pending []time.Time) time.Time {
	c := end
	if n := stamp(now).Truncate(time.Minute); n.Before(c) {
		c = n
	}
	for _, p := range pending {
		if t := p.Truncate(time.Minute); t.Before(c) {
			c = t
		}
	}
	return c
}

func inWindow(t, start, end time.Time) bool { return !t.Before(start) && t.Before(end) }

func (s *Server) getDeleted(w http.ResponseWriter, r *http.Request, o *sobject) {
	start, end, earliest, now, ok := s.replicationWindow(w, r, true)
	if !ok {
		return
	}
	s.mu.Lock()
	type entry struct {
		ID          string `json:"id"`
		DeletedDate string `json:"deletedDate"`
	}
	list := []entry{}
	var pending []time.Time
	for _, d := range o.deleted {
		if !inWindow(d.at, start, end) || d.at.Before(earliest) {
			continue
		}
		if d.visibleAt.After(now) {
			pending = append(pending, d.at)
			continue
		}
		list = append(list, entry{d.id, d.at.Format(dateTimeLayout)})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"deletedRecords":        list,
		"earliestDateAvailable": earliest.Format(dateTimeLayout),
		"latestDateCovered":     covered(end, now, pending).Format(dateTimeLayout),
	})
}

func (s *Server) getUpdated(w http.ResponseWriter, r *http.Request, o *sobject) {
	start, end, _, now, ok := s.replicationWindow(w, r, false)
	if !ok {
		return
	}
	s.mu.Lock()
	ids := []string{}
	var pending []time.Time
	for _, id := range o.ids {
		rec := o.records[id]
		if latest := rec.latest(); latest["IsDeleted"] != true {
			if ts := latest["SystemModstamp"].(time.Time); inWindow(ts, start, end) && rec.versions[len(rec.versions)-1].visibleAt.After(now) {
				pending = append(pending, ts)
			}
		}
		v := rec.visible(now)
		if v == nil || v["IsDeleted"] == true {
			continue
		}
		if inWindow(v["SystemModstamp"].(time.Time), start, end) {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ids": ids, "latestDateCovered": covered(end, now, pending).Format(dateTimeLayout)})
}
