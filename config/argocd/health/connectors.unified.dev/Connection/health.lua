-- Argo CD health of a connectors.unified.dev Connection, from the conditions the operator
-- writes (Ready, and the kstatus pair Reconciling / Stalled, present only while True) and
-- observedGeneration, which the CRD defaults to -1 until the first reconcile. It agrees
-- with kstatus (what Flux reads): Degraded is exactly kstatus Failed
-- (Stalled=True: only a human can fix it), Progressing is InProgress (a generation not yet
-- observed, Reconciling=True, or Ready False or Unknown: the operator retries whatever has
-- not stalled), Healthy is Current. Where kstatus guesses Current for lack of evidence (no
-- status, no Ready condition) it says Progressing. Suspended is
-- spec.sync.suspend on a Connection that would otherwise be Healthy.
-- It uses nothing beyond the libraries Argo CD always opens (no useOpenLibs needed).
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.reason ~= nil and c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or c.type
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
local conditions = nil
if status ~= nil then
  conditions = status.conditions
end
local reconciling = condition(conditions, "Reconciling")
if status == nil or status.observedGeneration == nil or status.observedGeneration ~= generation then
  hs.status = "Progressing"
  if reconciling ~= nil and reconciling.status == "True" then
    hs.message = describe(reconciling)
  elseif status == nil or status.observedGeneration == nil or status.observedGeneration < 0 then
    hs.message = "Waiting for the operator to reconcile the Connection"
  else
    hs.message = "Waiting for the operator to reconcile generation " .. generation ..
      " (observed " .. status.observedGeneration .. ")"
  end
  return hs
end

local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

local ready = condition(conditions, "Ready")
if ready == nil or ready.status ~= "True" or
    (ready.observedGeneration ~= nil and ready.observedGeneration ~= generation) then
  hs.status = "Progressing"
  if ready ~= nil then
    hs.message = describe(ready)
  else
    hs.message = "Waiting for the Ready condition"
  end
  return hs
end

if obj.spec ~= nil and obj.spec.sync ~= nil and obj.spec.sync.suspend == true then
  hs.status = "Suspended"
  hs.message = "Sync is suspended (spec.sync.suspend)"
  return hs
end
hs.status = "Healthy"
hs.message = ready.message or "Ready"
return hs
