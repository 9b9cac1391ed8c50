package release_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/release"
)

// What a person types in the Temporal UI as a signal's or update's input: a payload that
// does not fit decodes without error (the SDK would drop a signal that fails to decode,
// without a trace) and Validate refuses it, naming the field and the accepted form.
func TestHumanInputFromJSONIsDecodedStrictly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		reason  bool     // a ReasonInput (escalate, abort, approve) instead of a RetryInput
		want    []string // in the error; none: valid
	}{
		{name: "empty retry", payload: `{}`},
		{name: "null retry", payload: `null`},
		{name: "full retry", payload: `{"dockerfile_ref": "abc123", "driver": {"i915_tag": "I915_1", "firmware_tag": "FW_1", "driver_version": "1.2.3"}, "reason": "fixed", "by": "alice"}`},
		{name: "null fields", payload: `{"dockerfile_ref": null, "driver": null}`},
		{name: "unknown field", payload: `{"dockerfileref": "main"}`, want: []string{`dockerfileref "\"main\"" is not valid`, "dockerfile_ref, driver, reason, by", "unknown"}},
		{name: "wrong type", payload: `{"reason": 5}`, want: []string{`reason "5" is not valid`, "a JSON string"}},
		{name: "driver as a string", payload: `{"driver": "I915_1"}`, want: []string{"driver ", "a JSON object with i915_tag, firmware_tag and driver_version"}},
		{name: "unknown driver field", payload: `{"driver": {"i915": "x", "i915_tag": "I915_1", "firmware_tag": "FW_1", "driver_version": "1.2.3"}}`, want: []string{"driver.i915 ", "i915_tag, firmware_tag, driver_version"}},
		{name: "driver tag of the wrong type", payload: `{"driver": {"i915_tag": 1, "firmware_tag": "FW_1", "driver_version": "1.2.3"}}`, want: []string{`driver.i915_tag "1" is not valid`}},
		{name: "bad ref", payload: `{"dockerfile_ref": "bad ref"}`, want: []string{`dockerfile_ref "bad ref" is not valid`, release.FormRef}},
		{name: "bad driver set", payload: `{"driver": {"i915_tag": "a b", "firmware_tag": "", "driver_version": "1.2"}}`, want: []string{"driver.i915_tag", "driver.firmware_tag is required", "driver.driver_version"}},
		{name: "not an object", payload: `"retry please"`, want: []string{"retry input", `{"dockerfile_ref": "main"`}},
		{name: "an array", payload: `[1, 2]`, want: []string{"retry input"}},
		{name: "reason", payload: `{"reason": "superseded", "by": "bob"}`, reason: true},
		{name: "reason missing", payload: `{"by": "bob"}`, reason: true, want: []string{"reason is required"}},
		{name: "reason of the wrong type", payload: `{"reason": ["a"]}`, reason: true, want: []string{`reason "[\"a\"]" is not valid`, "a JSON string"}},
		{name: "reason unknown field", payload: `{"reason": "x", "because": "y"}`, reason: true, want: []string{"because", "reason, by"}},
		{name: "reason not an object", payload: `42`, reason: true, want: []string{`input "42" is not valid`, `{"reason": "superseded"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.reason {
				var in release.ReasonInput
				require.NoError(t, json.Unmarshal([]byte(tc.payload), &in), "decoding never fails")
				err = in.Validate(release.ActionAbort)
			} else {
				var in release.RetryInput
				require.NoError(t, json.Unmarshal([]byte(tc.payload), &in), "decoding never fails")
				err = in.Validate()
			}
			if len(tc.want) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// A good input decodes to what was sent, and a second decode into the same value forgets
// the problems of the first.
func TestHumanInputRoundTrips(t *testing.T) {
	in := release.RetryInput{DockerfileRef: "abc", Driver: &release.DriverSet{I915Tag: "I915_1", FirmwareTag: "FW_1", DriverVersion: "1.2.3"}, Reason: "r", By: "b"}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	var out release.RetryInput
	require.NoError(t, json.Unmarshal([]byte(`{"bogus": 1}`), &out))
	require.Error(t, out.Validate())
	require.NoError(t, json.Unmarshal(b, &out))
	require.NoError(t, out.Validate())
	assert.Equal(t, in, out)

	var r release.ReasonInput
	require.NoError(t, json.Unmarshal([]byte(`{"reason": "why", "by": "me"}`), &r))
	assert.Equal(t, release.ReasonInput{Reason: "why", By: "me"}, r)
	assert.NoError(t, r.Validate(release.ActionEscalate))
}

func TestValidateWorkflowID(t *testing.T) {
	assert.NoError(t, release.ValidateWorkflowID("ID", release.WorkflowID("5.14.0-427.37.1.el9_4.x86_64", "1.2.0")))
	for _, id := range []string{"", "release/", "release/5.14.0-427.37.1.el9_4.x86_64", "matrix/1.2.0", "release/x/1.2.0",
		"release/5.14.0-427.37.1.el9_4.x86_64/1.2", "release/5.14.0-427.37.1.el9_4.x86_64/1.2.0/x", " release/5.14.0-427.37.1.el9_4.x86_64/1.2.0"} {
		err := release.ValidateWorkflowID("ID", id)
		if assert.Error(t, err, id) {
			assert.Contains(t, err.Error(), "ID")
			assert.Contains(t, err.Error(), "release/<kernel>/<driver-version>")
		}
	}
}
