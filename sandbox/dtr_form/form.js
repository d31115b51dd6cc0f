// The DTR form filler: package -> LHC-Forms (prefilled) -> the clinician's answers -> $evaluate -> verdict.
//
// Query parameters: launch = URL of a JSON {"coverage": Coverage, "context": coverage-assertion-id,
// "user": "Practitioner/id"} (what a DTR launch gives the app: the EHR's Coverage, the CRD assertion id
// and the signed-in user; default launch.json);
// fhir = the payer's FHIR base (default: this origin + /fhir); autofill = answer every open
// "is this criterion met?" question Yes by clicking it, then submit (the browser test and the demo).
// The outcome is also written as JSON into <pre id="result"> for headless runs.
"use strict";

const params = new URLSearchParams(location.search);
const fhirBase = params.get("fhir") || location.origin + "/fhir";
const formElement = document.getElementById("form");
const ORIGIN = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin";
let draft = null;
let user = null;  // "Practitioner/id": the author of every answer the clinician gives

function show(text) { document.getElementById("status").textContent = text; }

function finish(result) {
  document.getElementById("result").textContent = JSON.stringify(result);
  document.body.dataset.done = result.error ? "error" : "ok";
}

async function post(path, body) {
  const answer = await fetch(fhirBase + path, {
    method: "POST", headers: {"Content-Type": "application/fhir+json"}, body: JSON.stringify(body)});
  const json = await answer.json();
  if (!answer.ok) {  // an OperationOutcome whose details.text is meant for the user
    throw new Error(`${path}: ${answer.status} ${json.issue?.[0]?.details?.text || ""}`);
  }
  return json;
}

async function loadPackage(launch) {
  const out = await post("/Questionnaire/$questionnaire-package", {resourceType: "Parameters", parameter: [
    {name: "coverage", resource: launch.coverage}, {name: "context", valueString: launch.context}]});
  const bundle = out.parameter.find(p => p.name === "PackageBundle").resource;
  return bundle.entry.map(e => e.resource);  // [Questionnaire, draft QuestionnaireResponse]
}

function* walk(items) {
  for (const item of items || []) {
    yield item;
    yield* walk(item.item);
    for (const answer of item.answer || []) yield* walk(answer.item);
  }
}

function answerValue(answer) {
  const key = Object.keys(answer).find(k => k.startsWith("value"));
  return JSON.stringify([key, answer[key]]);
}

// LHC-Forms exports only the answers: put back what a DTR QuestionnaireResponse carries (profile,
// identifier = the assertion id, the form's url|version, subject, qr-coverage, qr-context, intendedUse)
// and each answer's information-origin: the payer's prefilled answer kept as is stays auto-server, a
// changed one is "override", a new one "manual", both with the clinician as author (DTR dtrx-1).
function withDtrElements(response) {
  const prefilled = new Map();
  for (const item of walk(draft.item)) if (item.answer) prefilled.set(item.linkId, item.answer);
  for (const item of walk(response.item)) {
    if (!item.answer) continue;
    const before = prefilled.get(item.linkId);
    item.answer = item.answer.map(answer => {
      const same = before?.find(b => answerValue(b) === answerValue(answer));
      const source = same ? null : (before ? "override" : "manual");
      const extension = same ? same.extension : [{url: ORIGIN, extension: [{url: "source", valueCode: source},
        {url: "author", extension: [{url: "practitioner", valueReference: {reference: user}}]}]}];
      return {...answer, extension};
    });
  }
  const {meta, identifier, questionnaire, subject, extension} = draft;
  return {...response, meta, identifier, questionnaire, subject, extension,
          status: "completed", authored: new Date().toISOString()};
}

function verdictOf(parameters) {
  const get = name => parameters.parameter.filter(p => p.name === name);
  return {
    verdict: get("verdict")[0].valueCode,
    missing: get("missingDocumentation").map(p => p.valueString),
    attested: get("criterion").filter(c => c.part.some(p => p.name === "attested"))
      .map(c => c.part.find(p => p.name === "id").valueString),
  };
}

async function submit() {
  const problems = LForms.Util.checkValidity(formElement);
  if (problems) { show("Please complete: " + problems.join("; ")); return null; }
  const exported = LForms.Util.getFormFHIRData("QuestionnaireResponse", "R4", formElement, {subject: draft.subject});
  const response = withDtrElements(exported);
  const out = await post("/QuestionnaireResponse/$evaluate", {resourceType: "Parameters", parameter: [
    {name: "context", valueString: draft.identifier.value},
    {name: "questionnaireResponse", resource: response}]});
  const result = verdictOf(out);
  const box = document.getElementById("verdict");
  box.className = "verdict-" + result.verdict;
  box.textContent = `Re-evaluated: ${result.verdict}` +
    (result.attested.length ? ` (attested, for prior authorization review: ${result.attested.join(", ")})` : "") +
    (result.missing.length ? ` -- still missing: ${result.missing.join("; ")}` : "");
  show("Submitted.");
  return {...result, response};
}

// The open "is this criterion met?" questions (boolean items the payer left unanswered), answered Yes
// the way a person does: a click on the item's Yes option. Asked again after each click, since an
// answer can hide the other branches of an "any" group (their enableWhenExpression).
async function answerOpenItemsYes() {
  const answered = new Set([...walk(draft.item)].filter(i => i.answer).map(i => i.linkId));
  const clicked = [];
  for (;;) {
    const option = [...formElement.querySelectorAll("[id$='|true']")].find(o => {
      const linkId = o.id.split("/")[0];
      return linkId.endsWith(".met") && !answered.has(linkId) && !clicked.includes(linkId);
    });
    if (!option) return clicked;
    option.click();
    clicked.push(option.id.split("/")[0]);
    await new Promise(resolve => setTimeout(resolve, 100));
  }
}

async function main() {
  try {
    for (let i = 0; !(window.LForms?.Util && window.LForms?.FHIR); i++) {
      if (i > 200) throw new Error("LHC-Forms did not load");
      await new Promise(resolve => setTimeout(resolve, 50));
    }
    const launch = await (await fetch(params.get("launch") || "launch.json")).json();
    user = launch.user;
    const [questionnaire, prefilled] = await loadPackage(launch);
    draft = prefilled;
    await LForms.Util.addFormToPage(questionnaire, formElement, {fhirVersion: "R4", questionnaireResponse: draft});
    const open = [...walk(questionnaire.item)].filter(i => i.linkId.endsWith(".met")).length -
      [...walk(draft.item)].filter(i => i.linkId.endsWith(".met") && i.answer).length;
    show(`${questionnaire.title}: prefilled from the record; ${open} question(s) left for you.`);
    const button = document.getElementById("submit");
    button.disabled = false;
    button.onclick = () => submit().then(r => r && finish(r)).catch(e => { show(e.message); finish({error: e.message}); });
    if (params.has("autofill")) {
      await new Promise(resolve => setTimeout(resolve, 200));
      const clicked = await answerOpenItemsYes();
      await new Promise(resolve => setTimeout(resolve, 200));
      const result = await submit();
      finish(result ? {...result, clicked} : {error: "the form is not complete", clicked});
    }
  } catch (error) {
    show(error.message);
    finish({error: error.message});
  }
}

main();
