#!/usr/bin/env node
// Runs Segment's own destination-filter engine, @segment/tsub, for the differential tests in
// tsub.rs.
//
// Reads JSON lines on stdin: {"id", "matcher": {"type": "fql"|"all", "ir": "<IR text>"},
// "event", "transformers"?}. Writes one JSON line per input line:
// {"id", "match": bool, "event"?} ("event" only when transformers were given: the transformed
// event when the matcher matched, else the event unchanged; null = dropped), or
// {"id", "error": "..."} when tsub throws.
//
// @segment/tsub is loaded from $TSUB_NODE_MODULES, else from tests/compat/node_modules (where
// scripts/install-test-deps.sh installs it). Exit code 3: tsub could not be loaded.
'use strict'
const path = require('path')
const readline = require('readline')

const modules =
  process.env.TSUB_NODE_MODULES || path.join(__dirname, '..', '..', '..', 'tests', 'compat', 'node_modules')
let tsub
try {
  tsub = require(require.resolve('@segment/tsub', { paths: [modules] }))
} catch (e) {
  process.stderr.write(`cannot load @segment/tsub from ${modules}: ${e.message}\n`)
  process.exit(3)
}

function answer(request) {
  // A fresh copy, as tsub mutates events in place.
  const event = JSON.parse(JSON.stringify(request.event === undefined ? {} : request.event))
  const match = tsub.matches(event, request.matcher)
  const out = { id: request.id, match }
  if (request.transformers) {
    out.event = match ? tsub.transform(event, request.transformers) : event
  }
  return out
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  if (!line.trim()) return
  let request
  try {
    request = JSON.parse(line)
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: `bad json: ${e.message}` }) + '\n')
    return
  }
  let out
  try {
    out = answer(request)
  } catch (e) {
    out = { id: request.id, error: String((e && e.message) || e) }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
})
