package atlassian

import (
	"bytes"
	"html"
	"strings"
	"unicode/utf8"

	xhtml "golang.org/x/net/html"
)

// Confluence storage format is XHTML with Confluence's own ac: (macros, links, layouts)
// and ri: (resource identifiers) elements. StorageToText reads it with the HTML5
// tokenizer rather than an XML parser on purpose: pages written by old editors or
// imported from elsewhere are not always well formed, and a page that does not parse must
// still be searchable.

// maxStorageDepth bounds the open-element stack StorageToText keeps. Deeper nesting is
// still read (its text is kept); only its end tags can no longer be matched, so the work
// per token stays bounded however pathological the input.
const maxStorageDepth = 256

// elementRole says what an element does to the text around it.
type elementRole uint8

const (
	// The zero role, inline, leaves lines alone.
	_ elementRole = iota
	// roleBlock starts and ends a line.
	roleBlock
	// roleCell separates table cells on one line.
	roleCell
	// roleDrop hides everything inside: macro parameters, scripts, styles and the
	// bookkeeping of tasks and layouts.
	roleDrop
	// rolePre keeps whitespace as written, and is a block.
	rolePre
	// roleBreak is a line break with no content.
	roleBreak
)

var roles = map[string]elementRole{
	"p": roleBlock, "div": roleBlock, "h1": roleBlock, "h2": roleBlock, "h3": roleBlock,
	"h4": roleBlock, "h5": roleBlock, "h6": roleBlock, "li": roleBlock, "ul": roleBlock,
	"ol": roleBlock, "dl": roleBlock, "dt": roleBlock, "dd": roleBlock, "tr": roleBlock,
	"table": roleBlock, "thead": roleBlock, "tbody": roleBlock, "tfoot": roleBlock,
	"blockquote": roleBlock, "section": roleBlock, "article": roleBlock, "header": roleBlock,
	"footer": roleBlock, "caption": roleBlock, "figure": roleBlock, "figcaption": roleBlock,
	"hr": roleBreak, "br": roleBreak,
	"td": roleCell, "th": roleCell,
	"pre":    rolePre,
	"script": roleDrop, "style": roleDrop, "template": roleDrop, "head": roleDrop,
	"title": roleDrop, "noscript": roleDrop, "iframe": roleDrop, "object": roleDrop,
	// Confluence: a macro's body is text, its parameters are settings.
	"ac:parameter": roleDrop, "ac:default-parameter": roleDrop, "ac:placeholder": roleDrop,
	"ac:task-id": roleDrop, "ac:task-uuid": roleDrop, "ac:task-status": roleDrop,
	"ac:adf-attribute": roleDrop, "ac:adf-fallback": roleDrop,
	"ac:plain-text-body": rolePre, "ac:rich-text-body": roleBlock,
	"ac:task": roleBlock, "ac:task-body": roleBlock, "ac:layout-section": roleBlock,
	"ac:layout-cell": roleBlock, "ac:adf-node": roleBlock, "ac:adf-content": roleBlock,
}

// voidElements never have content, so their start tags are not pushed on the stack.
var voidElements = map[string]bool{
	"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true,
	"img": true, "input": true, "link": true, "meta": true, "param": true, "source": true,
	"track": true, "wbr": true,
}

// StorageToText returns the plain text of a Confluence storage-format (XHTML) body:
// block elements (paragraphs, headings, list items, table rows, line breaks, pre,
// blockquote, macro bodies) become line breaks, table cells on a row are separated by a
// tab, entities are decoded, and whitespace is collapsed as a browser would, except in
// pre and in a macro's plain-text body (code, noformat), whose CDATA is kept verbatim.
// Macro parameters, scripts and styles are dropped. A link with no text of its own reads
// as the title of the page or the name of the file it points to. Malformed input never
// panics; the work is linear in the input.
func StorageToText(storage string) string {
	if storage == "" {
		return ""
	}
	c := storageConverter{}
	z := xhtml.NewTokenizer(strings.NewReader(storage))
	// CDATA is how Confluence stores code; without this the tokenizer would call it a
	// bogus comment.
	z.AllowCDATA(true)
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return c.finish()
		case xhtml.TextToken:
			raw := z.Raw()
			if bytes.HasPrefix(raw, []byte("<![CDATA[")) {
				// The tokenizer would decode entities in CDATA, which is literal.
				body := bytes.TrimPrefix(raw, []byte("<![CDATA["))
				body = bytes.TrimSuffix(body, []byte("]]>"))
				code := strings.ReplaceAll(string(body), "\r\n", "\n")
				c.text(strings.Trim(code, "\n"), true)
				continue
			}
			c.text(string(z.Text()), false)
		case xhtml.StartTagToken:
			name, hasAttr := z.TagName()
			c.start(string(name), hasAttr, z, false)
		case xhtml.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			c.start(string(name), hasAttr, z, true)
		case xhtml.EndTagToken:
			name, _ := z.TagName()
			c.end(string(name))
		}
	}
}

// storageConverter is StorageToText's state.
type storageConverter struct {
	out strings.Builder
	// stack holds the open elements, at most maxStorageDepth of them; open counts them
	// by name, so that a stray end tag costs nothing.
	stack []string
	open  map[string]int
	// drop, pre, cells and links count the open elements of those kinds on the stack.
	drop, pre, cells, links int
	// pending is the separator owed before the next text: 0, '\t' or '\n'.
	pending byte
	// space is true when collapsed whitespace is owed before the next text.
	space bool
	// linkText is set when the innermost ac:link produced text; linkTitle is what it
	// points to, shown when it has none.
	linkText  bool
	linkTitle string
}

func (c *storageConverter) start(name string, hasAttr bool, z *xhtml.Tokenizer, selfClosing bool) {
	role := roles[name]
	if c.drop > 0 {
		if !selfClosing && !voidElements[name] {
			c.push(name)
		}
		return
	}
	switch {
	case name == "ac:link":
		if !selfClosing {
			c.linkText, c.linkTitle = false, ""
		}
	case c.links > 0 && strings.HasPrefix(name, "ri:") && hasAttr && c.linkTitle == "":
		c.linkTitle = linkTarget(z)
	}
	switch role {
	case roleBlock, rolePre:
		c.breakLine()
	case roleBreak:
		c.breakLine()
	case roleCell:
		// Cells of a row share its line; a row starts a new one.
		if c.pending != '\n' && c.out.Len() > 0 && !c.atLineStart() {
			c.pending = '\t'
		}
		c.space = false
	}
	if selfClosing || voidElements[name] {
		if role == roleBlock || role == rolePre {
			c.breakLine()
		}
		return
	}
	c.push(name)
}

func (c *storageConverter) end(name string) {
	// Close name and everything opened inside it; an end tag with no start is ignored.
	if c.open[name] == 0 {
		return
	}
	for i := len(c.stack) - 1; i >= 0; i-- {
		if c.stack[i] != name {
			continue
		}
		for j := len(c.stack) - 1; j >= i; j-- {
			c.pop(c.stack[j])
		}
		c.stack = c.stack[:i]
		return
	}
}

func (c *storageConverter) push(name string) {
	if len(c.stack) >= maxStorageDepth {
		return
	}
	c.stack = append(c.stack, name)
	if c.open == nil {
		c.open = map[string]int{}
	}
	c.open[name]++
	switch roles[name] {
	case roleDrop:
		c.drop++
	case rolePre:
		c.pre++
	case roleCell:
		c.cells++
	}
	if name == "ac:link" {
		c.links++
	}
}

// pop accounts for the element name leaving the stack.
func (c *storageConverter) pop(name string) {
	c.open[name]--
	role := roles[name]
	switch role {
	case roleDrop:
		c.drop--
		return
	case rolePre:
		c.pre--
	case roleCell:
		c.cells--
	}
	if name == "ac:link" {
		c.links--
		if !c.linkText && c.linkTitle != "" && c.drop == 0 {
			c.text(c.linkTitle, false)
		}
		c.linkText, c.linkTitle = true, ""
	}
	if role == roleBlock || role == rolePre {
		c.breakLine()
	}
}

// linkTarget is the name an ri: element gives its target: a page or blog post title, a
// file name, a space key or a URL.
func linkTarget(z *xhtml.Tokenizer) string {
	var title string
	for {
		key, val, more := z.TagAttr()
		switch string(key) {
		case "ri:content-title", "ri:filename", "ri:value":
			return string(val)
		case "ri:space-key", "ri:url":
			title = string(val)
		}
		if !more {
			return title
		}
	}
}

// text adds s; verbatim keeps its whitespace (CDATA, pre).
func (c *storageConverter) text(s string, verbatim bool) {
	if c.drop > 0 || s == "" {
		return
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\u00a0", " ") // &nbsp; is a space to a reader of plain text
	if verbatim || c.pre > 0 {
		if strings.TrimSpace(s) == "" && c.out.Len() == 0 {
			return
		}
		c.flush()
		c.out.WriteString(s)
		c.linkText = true
		return
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		if s != "" {
			c.space = true
		}
		return
	}
	if isSpace(s[0]) {
		c.space = true
	}
	c.flush()
	c.out.WriteString(strings.Join(fields, " "))
	c.space = isSpace(s[len(s)-1])
	c.linkText = true
}

// flush writes the separator owed before new text.
func (c *storageConverter) flush() {
	switch {
	case c.out.Len() == 0:
	case c.pending != 0:
		c.out.WriteByte(c.pending)
	case c.space && !c.atLineStart():
		c.out.WriteByte(' ')
	}
	c.pending, c.space = 0, false
}

// breakLine owes a line break before the next text. Inside a table cell (paragraphs
// in cells are the norm) it owes a space instead, so that a row stays on one line.
func (c *storageConverter) breakLine() {
	if c.out.Len() == 0 {
		return
	}
	if c.cells > 0 && c.pre == 0 {
		c.space = true
		return
	}
	c.pending = '\n'
	c.space = false
}

func (c *storageConverter) atLineStart() bool {
	s := c.out.String()
	return s == "" || s[len(s)-1] == '\n'
}

// finish trims trailing space from every line and drops blank lines at the ends.
func (c *storageConverter) finish() string {
	lines := strings.Split(c.out.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' }

// TextToStorage turns plain text into a Confluence storage-format body for a new page:
// paragraphs (separated by blank lines) become <p> elements, single line breaks become
// <br />, and everything is escaped, so the text can never inject markup or macros.
// Characters that XML forbids (most control characters) and invalid UTF-8 are dropped,
// because Confluence refuses a body that is not well-formed XML.
func TextToStorage(text string) string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	text = strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0xFFFE || r == 0xFFFF {
			return -1
		}
		return r
	}, strings.ToValidUTF8(text, ""))

	var b strings.Builder
	for _, para := range strings.Split(text, "\n\n") {
		para = strings.Trim(para, "\n")
		if strings.TrimSpace(para) == "" {
			continue
		}
		b.WriteString("<p>")
		for i, line := range strings.Split(para, "\n") {
			if i > 0 {
				b.WriteString("<br />")
			}
			b.WriteString(html.EscapeString(line))
		}
		b.WriteString("</p>")
	}
	return b.String()
}
