// Driver for @rudderstack/rudder-sdk-node.
// usage: node rudder_node.js '<plan JSON>'   (plan: see checks.make_plan; plan.gzip=false turns gzip off)
// With the default gzip the SDK posts a gzipped body as application/x-www-form-urlencoded.
// Sends identify, track, page, screen, group and alias, waits until every
// callback has fired, and prints one JSON line: {"sent": {}, "errors": [...]}
// (this SDK does not hand back the messages it builds).
const Analytics = require('@rudderstack/rudder-sdk-node')

const plan = JSON.parse(process.argv[2])
const errors = []
const client = new Analytics(plan.writeKey, {
  dataPlaneUrl: plan.host,
  gzip: plan.gzip !== false,
  flushAt: 20,
  flushInterval: 200,
  retryCount: 1,
  timeout: 5000,
  logLevel: 'error',
  // without one, a failed internal flush is an unhandled rejection that kills node
  errorHandler: (err) => errors.push(`errorHandler: ${err.response ? err.response.status : err.code || err}`),
})
const extras = () => ({ context: structuredClone(plan.context), integrations: structuredClone(plan.integrations) })
const userId = plan.userId
const pending = []
const call = (name, method, message) => {
  pending.push(new Promise((resolve) => {
    client[method]({ ...message, ...extras() }, (err) => {
      if (err) errors.push(`${name}: ${err}`)
      resolve()
    })
  }))
}

call('identify', 'identify', { userId, traits: plan.identifyTraits })
call('track', 'track', { userId, event: plan.event, properties: plan.trackProperties })
call('page', 'page', { userId, category: plan.pageCategory, name: plan.pageName, properties: plan.pageProperties })
call('screen', 'screen', { userId, category: plan.screenCategory, name: plan.screenName, properties: plan.screenProperties })
call('group', 'group', { userId, groupId: plan.groupId, traits: plan.groupTraits })
call('alias', 'alias', { userId, previousId: plan.previousId })
client.flush()

const timeout = new Promise((resolve) => setTimeout(() => { errors.push('timed out waiting for callbacks'); resolve() }, 20000))
Promise.race([Promise.all(pending), timeout]).then(() => {
  console.log(JSON.stringify({ sent: {}, errors }))
  process.exit(0)
})
