package atlassian

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxADFDepth bounds how deep ADFToText descends into nested nodes. Real documents are
// a handful of levels deep (a table cell holding a list holding a paragraph); anything
// deeper than this is hostile or broken, and its deeper text is dropped rather than
// walked, so that a crafted document cannot exhaust the stack or the CPU.
const MaxADFDepth = 100

// adfNode is one node of an Atlassian Document Format document
// (shared/vendor-specs/atlassian-document-format.schema.json). Only what plain text
// needs is decoded: marks, localIds and layout attributes are skipped by the decoder.
type adfNode struct {
	Type    string    `json:"type"`
	Text    string    `json:"text"`
	Attrs   *adfAttrs `json:"attrs"`
	Content []adfNode `json:"content"`
}

// adfAttrs is the union of the attributes that carry text in some node type.
type adfAttrs struct {
	Text      string `json:"text"`      // mention ("@Alice"), status, emoji (the character), placeholder
	ShortName string `json:"shortName"` // emoji (":smile:")
	URL       string `json:"url"`       // inlineCard, blockCard, embedCard
	Timestamp string `json:"timestamp"` // date: epoch milliseconds as a string
	Title     string `json:"title"`     // expand, nestedExpand
	Order     int    `json:"order"`     // orderedList: the number of the first item
}

// noAttrs stands in for a node without attrs; it is never written.
var noAttrs adfAttrs

// ADFToText renders an ADF document (a Jira v3 description or comment body, a
// Confluence atlas_doc_format body) as plain text for search and display:
//
//   - blocks (paragraphs, headings, code blocks, panels, quotes, lists, tables) are
//     separated by a blank line; list items, task and decision items and table rows
//     each start a line ("- " or "1. " before list items), table cells are separated by
//     a tab;
//   - text nodes are concatenated as they are, hardBreak is a newline;
//   - mention is its text ("@Alice"), emoji its character or else its short name,
//     inlineCard, blockCard and embedCard their URL, status its text, date the day
//     (YYYY-MM-DD, UTC), expand its title before its content;
//   - any other node type, known or not, contributes the text of its content.
//
// The result has no leading or trailing blank space. ADFToText never fails: JSON that
// is not a document (null, a string, malformed input) gives "", values of the wrong
// type are ignored, and nesting deeper than MaxADFDepth is not descended into. Every
// output byte comes from the input except separators, so the output is never much
// larger than the input.
func ADFToText(doc json.RawMessage) string {
	var root adfNode
	if err := json.Unmarshal(doc, &root); err != nil {
		// encoding/json fills what it can around values of the wrong type and reports
		// an UnmarshalTypeError; that partial document is still worth rendering. Any
		// other error (syntax, excessive nesting) leaves nothing trustworthy.
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return ""
		}
	}
	w := adfWriter{buf: make([]byte, 0, len(doc)/2)}
	w.node(&root, 0, false)
	return strings.TrimRightFunc(string(w.buf), isSpaceOrNewline)
}

func isSpaceOrNewline(r rune) bool { return r == '\n' || r == ' ' || r == '\t' || r == '\r' }

// adfWriter accumulates text and the separator owed before the next text, so that
// empty nodes leave no stray blank lines and nothing leads the output.
type adfWriter struct {
	buf []byte
	// owed is how many newlines must end the text before anything more is written:
	// 1 for a new line, 2 for a new block.
	owed int
	// prefix is written, after the separator, before the next text: a list item's
	// marker, which an empty item never shows.
	prefix string
}

// brk asks for the text that follows to start on a new line (1) or a new block (2).
func (w *adfWriter) brk(n int) {
	w.owed = max(w.owed, n)
}

// write appends s after the separator and prefix owed.
func (w *adfWriter) write(s string) {
	if s == "" {
		return
	}
	if len(w.buf) > 0 && w.owed > 0 {
		have := 0
		for i := len(w.buf) - 1; i >= 0 && w.buf[i] == '\n' && have < w.owed; i-- {
			have++
		}
		for ; have < w.owed; have++ {
			w.buf = append(w.buf, '\n')
		}
	}
	w.owed = 0
	w.buf = append(w.buf, w.prefix...)
	w.prefix = ""
	w.buf = append(w.buf, s...)
}

// node renders n at depth. tight is true inside list items and table cells, where the
// blocks of one item are separated by a line break rather than a blank line.
func (w *adfWriter) node(n *adfNode, depth int, tight bool) {
	if depth > MaxADFDepth {
		return
	}
	block := 2
	if tight {
		block = 1
	}
	a := n.Attrs
	if a == nil {
		a = &noAttrs
	}
	switch n.Type {
	case "text":
		w.write(n.Text)
		return
	case "hardBreak":
		// A literal newline: the author typed it. Leading ones are dropped with the rest
		// of the leading blank space.
		if len(w.buf) > 0 {
			w.write("\n")
		}
		return
	case "mention", "status":
		w.write(a.Text)
		return
	case "placeholder":
		return // its text is a hint shown by the editor, not content
	case "emoji":
		if a.Text != "" {
			w.write(a.Text)
		} else {
			w.write(a.ShortName)
		}
		return
	case "inlineCard":
		w.write(a.URL)
		return
	case "date":
		w.write(adfDate(a.Timestamp))
		return
	case "blockCard", "embedCard":
		w.brk(block)
		w.write(a.URL)
		w.brk(block)
		return
	case "bulletList", "orderedList", "taskList", "decisionList":
		w.brk(block)
		num := a.Order
		if num <= 0 || num > 1e6 {
			num = 1
		}
		for i := range n.Content {
			item := &n.Content[i]
			w.brk(1)
			w.prefix = ""
			if item.Type == "listItem" {
				switch n.Type {
				case "bulletList":
					w.prefix = "- "
				case "orderedList":
					w.prefix = strconv.Itoa(num) + ". "
					num++
				}
			}
			w.node(item, depth+1, true)
			w.prefix = ""
		}
		w.brk(block)
		return
	case "table":
		w.brk(block)
		for i := range n.Content {
			w.brk(1)
			w.node(&n.Content[i], depth+1, true)
		}
		w.brk(block)
		return
	case "tableRow":
		// Cells are rendered apart and joined by tabs, so that a row stays on one line
		// however its cells' paragraphs would separate themselves.
		cells := make([]string, 0, len(n.Content))
		empty := true
		for i := range n.Content {
			cell := adfWriter{}
			cell.node(&n.Content[i], depth+1, true)
			cells = append(cells, string(cell.buf))
			empty = empty && len(cell.buf) == 0
		}
		if !empty {
			w.brk(1)
			w.write(strings.Join(cells, "\t"))
		}
		return
	case "expand", "nestedExpand":
		w.brk(block)
		w.write(a.Title)
		w.brk(1)
		defer w.brk(block)
	case "paragraph", "heading", "codeBlock", "blockquote", "panel", "rule",
		"mediaSingle", "mediaGroup", "layoutSection", "layoutColumn", "bodiedExtension", "extension":
		w.brk(block)
		defer w.brk(block)
	case "listItem", "taskItem", "decisionItem", "tableCell", "tableHeader":
		// Their parents place them; their own blocks are tight.
		tight = true
	default:
		// Unknown types may carry text of their own, as a future inline node might.
		w.write(n.Text)
	}
	for i := range n.Content {
		w.node(&n.Content[i], depth+1, tight)
	}
}

// adfDate renders a date node's timestamp (epoch milliseconds) as the day it names.
// Atlassian editors store midnight UTC of the chosen day. Anything else is shown as is,
// shortened, so that garbage cannot balloon the output.
func adfDate(ts string) string {
	if ms, err := strconv.ParseInt(ts, 10, 64); err == nil && ms > -1e14 && ms < 1e14 {
		return time.UnixMilli(ms).UTC().Format(time.DateOnly)
	}
	if len(ts) > 32 {
		ts = ts[:32]
		for !utf8.ValidString(ts) && len(ts) > 0 {
			ts = ts[:len(ts)-1]
		}
	}
	return ts
}

// adfDoc is the JSON shape TextToADF produces.
type adfDoc struct {
	Type    string       `json:"type"`
	Version int          `json:"version"`
	Content []adfOutNode `json:"content"`
}

type adfOutNode struct {
	Type    string       `json:"type"`
	Text    string       `json:"text,omitempty"`
	Content []adfOutNode `json:"content,omitempty"`
}

// TextToADF builds an ADF document from plain text, the inverse of ADFToText for text
// without markup: each run of text between blank lines becomes a paragraph, and single
// newlines inside it become hard breaks. "\r\n" counts as "\n". Empty text gives a
// document with no content, which Jira accepts as an empty description.
func TextToADF(text string) json.RawMessage {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	doc := adfDoc{Type: "doc", Version: 1, Content: []adfOutNode{}}
	for _, para := range strings.Split(text, "\n\n") {
		para = strings.Trim(para, "\n")
		if strings.TrimSpace(para) == "" {
			continue
		}
		p := adfOutNode{Type: "paragraph"}
		for i, line := range strings.Split(para, "\n") {
			if i > 0 {
				p.Content = append(p.Content, adfOutNode{Type: "hardBreak"})
			}
			if line != "" { // ADF text nodes must not be empty
				p.Content = append(p.Content, adfOutNode{Type: "text", Text: line})
			}
		}
		doc.Content = append(doc.Content, p)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		// Only strings and ints are marshalled; this cannot happen.
		panic("atlassian: marshal ADF: " + err.Error())
	}
	return b
}
