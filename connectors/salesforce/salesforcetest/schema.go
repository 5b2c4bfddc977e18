package salesforcetest

import (
	"fmt"
	"strings"
	"time"
)

// FieldType is a field's type as describe names it.
type FieldType string

// The field types the fake models.
const (
	TypeID        FieldType = "id"
	TypeString    FieldType = "string"
	TypeTextArea  FieldType = "textarea"
	TypePicklist  FieldType = "picklist"
	TypeEmail     FieldType = "email"
	TypeURL       FieldType = "url"
	TypeBoolean   FieldType = "boolean"
	TypeDateTime  FieldType = "datetime"
	TypeDouble    FieldType = "double"
	TypeCurrency  FieldType = "currency"
	TypeInt       FieldType = "int"
	TypeReference FieldType = "reference"
)

// Field is one field of an sObject type.
type Field struct {
	// Name is the API name, for example Subject or Amount__c.
	Name string
	// Type is its describe type.
	Type FieldType
	// Label is shown by describe; empty uses Name.
	Label string
	// Required fields must be given on create (REQUIRED_FIELD_MISSING otherwise).
	Required bool
	// ReadOnly fields are set by the platform: create and update refuse them
	// (INVALID_FIELD_FOR_INSERT_UPDATE).
	ReadOnly bool
	// NameField marks the field describe reports as the record's name (nameField: true),
	// also what SOSL's IN NAME FIELDS searches.
	NameField bool
	// ReferenceTo names the types a reference field points at.
	ReferenceTo []string
}

// textual reports whether SOSL searches the field and LIKE applies to it.
func (f Field) textual() bool {
	switch f.Type {
	case TypeString, TypeTextArea, TypePicklist, TypeEmail, TypeURL:
		return true
	}
	return false
}

// stringy reports whether values of the field are Go strings (text, Ids, references).
func (f Field) stringy() bool {
	return f.textual() || f.Type == TypeID || f.Type == TypeReference
}

// sobject is a type and its records; it lives under Server.mu.
type sobject struct {
	name, label, prefix string
	custom              bool
	fields              []Field
	byLower             map[string]int // lower-case field name to index in fields
	records             map[string]*record
	ids                 []string        // creation order
	deleted             []deletedRecord // the delete log, in order of deletion
}

// deletedRecord is an entry of a type's delete log.
type deletedRecord struct {
	id        string
	at        time.Time // deletedDate, to the second
	visibleAt time.Time
}

func (o *sobject) field(name string) (Field, bool) {
	i, ok := o.byLower[strings.ToLower(name)]
	if !ok {
		return Field{}, false
	}
	return o.fields[i], true
}

// systemFields are on every type, first Id, the rest after the type's own fields.
var systemFields = []Field{
	{Name: "IsDeleted", Type: TypeBoolean, Label: "Deleted", ReadOnly: true},
	{Name: "CreatedDate", Type: TypeDateTime, Label: "Created Date", ReadOnly: true},
	{Name: "LastModifiedDate", Type: TypeDateTime, Label: "Last Modified Date", ReadOnly: true},
	{Name: "SystemModstamp", Type: TypeDateTime, Label: "System Modstamp", ReadOnly: true},
}

func newSObject(name, label, prefix string, custom bool, own []Field) *sobject {
	o := &sobject{name: name, label: label, prefix: prefix, custom: custom, records: map[string]*record{}, byLower: map[string]int{}}
	o.fields = append(o.fields, Field{Name: "Id", Type: TypeID, Label: label + " ID", ReadOnly: true})
	o.fields = append(o.fields, own...)
	o.fields = append(o.fields, systemFields...)
	for i, f := range o.fields {
		if f.Label == "" {
			o.fields[i].Label = f.Name
		}
		o.byLower[strings.ToLower(f.Name)] = i
	}
	return o
}

// standardTypes are the types every fake org starts with.
func standardTypes() []*sobject {
	return []*sobject{
		newSObject("Account", "Account", PrefixAccount, false, []Field{
			{Name: "Name", Type: TypeString, Label: "Account Name", Required: true, NameField: true},
			{Name: "Industry", Type: TypePicklist},
			{Name: "Website", Type: TypeURL},
			{Name: "Description", Type: TypeTextArea, Label: "Account Description"},
			{Name: "NumberOfEmployees", Type: TypeInt, Label: "Employees"},
			{Name: "AnnualRevenue", Type: TypeCurrency, Label: "Annual Revenue"},
		}),
		newSObject("Contact", "Contact", PrefixContact, false, []Field{
			{Name: "FirstName", Type: TypeString, Label: "First Name"},
			{Name: "LastName", Type: TypeString, Label: "Last Name", Required: true},
			{Name: "Name", Type: TypeString, Label: "Full Name", ReadOnly: true, NameField: true},
			{Name: "Email", Type: TypeEmail},
			{Name: "AccountId", Type: TypeReference, Label: "Account ID", ReferenceTo: []string{"Account"}},
			{Name: "Description", Type: TypeTextArea, Label: "Contact Description"},
		}),
		newSObject("Case", "Case", PrefixCase, false, []Field{
			{Name: "CaseNumber", Type: TypeString, Label: "Case Number", ReadOnly: true, NameField: true},
			{Name: "Subject", Type: TypeString},
			{Name: "Description", Type: TypeTextArea},
			{Name: "Status", Type: TypePicklist},
			{Name: "Priority", Type: TypePicklist},
			{Name: "IsClosed", Type: TypeBoolean, Label: "Closed", ReadOnly: true},
			{Name: "AccountId", Type: TypeReference, Label: "Account ID", ReferenceTo: []string{"Account"}},
			{Name: "ContactId", Type: TypeReference, Label: "Contact ID", ReferenceTo: []string{"Contact"}},
		}),
		newSObject("CaseComment", "Case Comment", PrefixCaseComment, false, []Field{
			{Name: "ParentId", Type: TypeReference, Label: "Parent Case ID", Required: true, ReferenceTo: []string{"Case"}},
			{Name: "CommentBody", Type: TypeTextArea, Label: "Body"},
			{Name: "IsPublished", Type: TypeBoolean, Label: "Published"},
		}),
	}
}

// AddCustomType adds a custom object (its name must end in __c, for example Invoice__c)
// with a Name field (its name field) and fields, each custom field's name also ending in
// __c. Its key prefix is the next of a00, a01, …. Adding an existing name panics: it is a
// test setup mistake.
func (s *Server) AddCustomType(name, label string, fields ...Field) {
	if !strings.HasSuffix(name, "__c") {
		panic(fmt.Sprintf("salesforcetest: custom type %q must end in __c", name))
	}
	for _, f := range fields {
		if !strings.HasSuffix(f.Name, "__c") {
			panic(fmt.Sprintf("salesforcetest: custom field %q must end in __c", f.Name))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.types[strings.ToLower(name)]; dup {
		panic(fmt.Sprintf("salesforcetest: type %q exists", name))
	}
	prefix := fmt.Sprintf("a%02d", s.customTypes)
	s.customTypes++
	own := append([]Field{{Name: "Name", Type: TypeString, Label: label + " Name", NameField: true}}, fields...)
	s.addTypeLocked(newSObject(name, label, prefix, true, own))
}

func (s *Server) addTypeLocked(o *sobject) {
	s.types[strings.ToLower(o.name)] = o
	s.typeOrder = append(s.typeOrder, o.name)
}

// typeLocked finds a type by API name, without case as Salesforce does.
func (s *Server) typeLocked(name string) (*sobject, bool) {
	o, ok := s.types[strings.ToLower(name)]
	return o, ok
}

// typeOfIDLocked finds the type an Id's key prefix names.
func (s *Server) typeOfIDLocked(id string) (*sobject, bool) {
	for _, o := range s.types {
		if len(id) >= 3 && o.prefix == id[:3] {
			return o, true
		}
	}
	return nil, false
}
