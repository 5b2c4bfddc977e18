package pgrepl

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
)

// relation is a Relation message, kept by relation OID: pgoutput sends one before the first
// change of a relation in each session and again after its schema changed.
type relation struct {
	table   TableName
	columns []string
	oids    []uint32
	// key are the indexes of the replica identity columns, keyNames their names.
	key      []int
	keyNames []string
}

func newRelation(m *pglogrepl.RelationMessage) *relation {
	r := &relation{table: TableName{Schema: m.Namespace, Name: m.RelationName}}
	for i, c := range m.Columns {
		r.columns = append(r.columns, c.Name)
		r.oids = append(r.oids, c.DataType)
		if c.Flags&1 != 0 {
			r.key = append(r.key, i)
			r.keyNames = append(r.keyNames, c.Name)
		}
	}
	return r
}

// parse decodes one pgoutput message. pglogrepl does not check lengths inside tuples, so a
// malformed message (a server is not ours to trust) would panic there: that becomes an error.
func parse(data []byte) (m pglogrepl.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("malformed pgoutput message %q", data[0])
		}
	}()
	if len(data) == 0 {
		return nil, fmt.Errorf("empty pgoutput message")
	}
	if !lengthsFit(data) {
		return nil, fmt.Errorf("malformed pgoutput message %q: a length runs past its end", data[0])
	}
	return pglogrepl.Parse(data)
}

// lengthsFit checks the counts and lengths pglogrepl allocates by before it reads (a relation
// count in Truncate, value lengths in tuples) against the message's size, so a forged length
// cannot make it allocate gigabytes.
func lengthsFit(data []byte) bool {
	b := data[1:]
	switch data[0] {
	case 'T':
		return len(b) >= 5 && uint64(binary.BigEndian.Uint32(b))*4 <= uint64(len(b)-5)
	case 'I', 'D':
		return len(b) >= 5 && tupleFits(b[5:]) >= 0
	case 'U':
		if len(b) < 5 {
			return false
		}
		rest := b[5:]
		if b[4] == 'K' || b[4] == 'O' {
			n := tupleFits(rest)
			if n < 0 || n >= len(rest) {
				return false
			}
			rest = rest[n+1:] // the new tuple's 'N'
		}
		return tupleFits(rest) >= 0
	}
	return true
}

// tupleFits returns the size of the TupleData at the start of b, or -1 when it runs past b.
func tupleFits(b []byte) int {
	if len(b) < 2 {
		return -1
	}
	n, off := int(binary.BigEndian.Uint16(b)), 2
	for range n {
		if off >= len(b) {
			return -1
		}
		kind := b[off]
		off++
		if kind == pglogrepl.TupleDataTypeText || kind == pglogrepl.TupleDataTypeBinary {
			if len(b)-off < 4 {
				return -1
			}
			l := uint64(binary.BigEndian.Uint32(b[off:]))
			off += 4
			if l > uint64(len(b)-off) {
				return -1
			}
			off += int(l)
		}
	}
	return off
}

// decode applies one pgoutput message to the stream's state.
func (s *Stream) decode(data []byte) error {
	msg, err := parse(data)
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		s.inTx = true
	case *pglogrepl.CommitMessage:
		s.inTx = false
		s.commit = m
	case *pglogrepl.RelationMessage:
		s.rels[m.RelationID] = newRelation(m)
	case *pglogrepl.InsertMessage:
		return s.row(Insert, m.RelationID, m.Tuple, nil)
	case *pglogrepl.UpdateMessage:
		var old *pglogrepl.TupleData
		if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey || m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
			old = m.OldTuple
		}
		return s.row(Update, m.RelationID, m.NewTuple, old)
	case *pglogrepl.DeleteMessage:
		return s.row(Delete, m.RelationID, nil, m.OldTuple)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, ok := s.rels[id]
			if !ok {
				return fmt.Errorf("truncate of relation %d before its Relation message", id)
			}
			s.pending = append(s.pending, Change{Op: Truncate, Table: rel.table})
		}
	default:
		// Type (custom types decode as text anyway), Origin and logical decoding messages say
		// nothing about rows.
	}
	return nil
}

// row appends the change of one row: newT is the new row (Insert, Update), old the old key or
// row when pgoutput sent one.
func (s *Stream) row(op Op, id uint32, newT, old *pglogrepl.TupleData) error {
	rel, ok := s.rels[id]
	if !ok {
		return fmt.Errorf("%s on relation %d before its Relation message", op, id)
	}
	c := Change{Op: op, Table: rel.table, KeyColumns: rel.keyNames}
	if newT != nil {
		vals, texts, unchanged, err := s.tuple(rel, newT)
		if err != nil {
			return fmt.Errorf("%s on %s: %w", op, rel.table, err)
		}
		c.Columns, c.Values, c.ValuesText, c.Unchanged = rel.columns, vals, texts, unchanged
	}
	if old != nil {
		vals, texts, _, err := s.tuple(rel, old)
		if err != nil {
			return fmt.Errorf("%s on %s: old row: %w", op, rel.table, err)
		}
		c.Key = make([]any, len(rel.key))
		c.KeyText = make([]*string, len(rel.key))
		for i, k := range rel.key {
			c.Key[i], c.KeyText[i] = vals[k], texts[k]
		}
	}
	s.pending = append(s.pending, c)
	return nil
}

// tuple decodes a TupleData against its relation.
func (s *Stream) tuple(rel *relation, t *pglogrepl.TupleData) (vals []any, texts []*string, unchanged []bool, err error) {
	if len(t.Columns) != len(rel.columns) {
		return nil, nil, nil, fmt.Errorf("%d columns, the relation has %d", len(t.Columns), len(rel.columns))
	}
	vals = make([]any, len(t.Columns))
	texts = make([]*string, len(t.Columns))
	unchanged = make([]bool, len(t.Columns))
	for i, col := range t.Columns {
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
		case pglogrepl.TupleDataTypeToast:
			unchanged[i] = true
		case pglogrepl.TupleDataTypeText:
			text := string(col.Data)
			texts[i] = &text
			vals[i] = s.value(rel.oids[i], col.Data, text)
		default:
			// Binary only comes when asked for (binary 'true'); the stream never asks.
			return nil, nil, nil, fmt.Errorf("column %q: unexpected tuple data kind %q", rel.columns[i], col.DataType)
		}
	}
	return vals, texts, unchanged, nil
}

// value decodes one column's text with pgx's type map; a type the map does not know, or a value
// it cannot decode, is its text.
func (s *Stream) value(oid uint32, data []byte, text string) any {
	dt, ok := s.typeMap.TypeForOID(oid)
	if !ok {
		return text
	}
	v, err := dt.Codec.DecodeValue(s.typeMap, oid, pgtype.TextFormatCode, data)
	if err != nil {
		return text
	}
	return v
}
