// Driver for @segment/analytics-node.
// usage: node segment_node.js '<plan JSON>'   (plan: see checks.make_plan)
// Sends identify, track, page, screen, group and alias, waits for delivery, and
// prints one JSON line: {"sent": {call: event as the SDK reports it}, "errors": [...]}.
const { Analytics } = require('@segment/analytics-node')

const plan = JSON.parse(process.argv[2])
const analytics = new Analytics({
  writeKey: plan.writeKey,
  host: plan.host,
  maxRetries: 1,
  flushAt: 20,
  flushInterval: 200,
  httpRequestTimeout: 5000,
})
const sent = {}
const errors = []
analytics.on('error', (e) => errors.push(`error event: ${e.code} ${e.reason}`))
const done = (call) => (err, ctx) => {
  if (err) errors.push(`${call}: ${err.reason || err}`)
  else sent[call] = ctx.event
}
const extras = () => ({ context: structuredClone(plan.context), integrations: structuredClone(plan.integrations) })
const userId = plan.userId

analytics.identify({ userId, traits: plan.identifyTraits, ...extras() }, done('identify'))
analytics.track({ userId, event: plan.event, properties: plan.trackProperties, ...extras() }, done('track'))
analytics.page({ userId, category: plan.pageCategory, name: plan.pageName, properties: plan.pageProperties, ...extras() }, done('page'))
analytics.screen({ userId, category: plan.screenCategory, name: plan.screenName, properties: plan.screenProperties, ...extras() }, done('screen'))
analytics.group({ userId, groupId: plan.groupId, traits: plan.groupTraits, ...extras() }, done('group'))
analytics.alias({ userId, previousId: plan.previousId, ...extras() }, done('alias'))

analytics.closeAndFlush({ timeout: 20000 }).then(
  () => {
    for (const call of ['identify', 'track', 'page', 'screen', 'group', 'alias']) {
      if (!sent[call] && !errors.some((e) => e.startsWith(call))) errors.push(`${call}: no callback`)
    }
    console.log(JSON.stringify({ sent, errors }))
  },
  (e) => { console.log(JSON.stringify({ sent, errors: [...errors, `closeAndFlush: ${e}`] })) },
)
